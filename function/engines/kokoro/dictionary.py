"""jieba's dictionary as a memory-mapped trie: Chinese words and their POS tags without a 1 s load.

jieba (0.42.1) keeps its 349k-word dictionary as a Python dict of every word and every prefix of
one (498k keys) with the words' frequencies, loaded from dict.txt or from a marshal cache, and
``jieba.posseg`` reads dict.txt again on import for the words' POS tags. On a 2 vCPU AMD EPYC
that was 0.6-1.1 s for the cache and 0.2 s for the tags: a third of a Mandarin instance's cold
start. The build (``build``) writes the same keys, frequencies and tags into a marisa-trie
``RecordTrie`` (2.3 MB); ``use`` memory-maps it (under a millisecond) and hands jieba read-only
views of it in place of its two tables, with the three operations jieba's cutting uses on them
(``in``, ``[]``, ``get``). The words and tags are jieba's own: tests/kokoro/test_dictionary.py
cuts the reading test set both ways and compares.

The file holds one record per key: the word's frequency (0 for a prefix that is no word) and its
tag (4 ASCII bytes, NUL-padded; empty for a prefix); the empty key, which jieba never looks up,
holds the total of all frequencies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import marisa_trie

_RECORD = "<I4s"  # frequency, POS tag
_TOTAL_KEY = ""


def build(dest: Path) -> None:
    """Write jieba's dictionary (its installed dict.txt) to ``dest`` as the trie (build time)."""
    import jieba

    frequencies: dict[str, int] = {}
    tags: dict[str, bytes] = {}
    total = 0
    with jieba.get_dict_file() as lines:  # jieba's own parse: "word frequency tag" per line
        for line in lines:
            word, frequency, tag = line.decode("utf-8").strip().split(" ")
            frequencies[word] = int(frequency)
            tags[word] = tag.encode("ascii")
            total += int(frequency)
            for end in range(1, len(word)):
                frequencies.setdefault(word[:end], 0)
    records = ((key, (frequency, tags.get(key, b""))) for key, frequency in frequencies.items())
    trie = marisa_trie.RecordTrie(_RECORD, [*records, (_TOTAL_KEY, (total, b""))])
    tmp = dest.with_name(dest.name + ".tmp")
    trie.save(str(tmp))
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)


class _Frequencies:
    """jieba's ``Tokenizer.FREQ``: every word and prefix -> the word's frequency (0: a prefix)."""

    __slots__ = ("_trie",)

    def __init__(self, trie: Any) -> None:
        self._trie = trie

    def __contains__(self, key: str) -> bool:
        return bool(key) and key in self._trie

    def __getitem__(self, key: str) -> int:
        if not key:
            raise KeyError(key)
        return self._trie[key][0][0]

    def get(self, key: str, default: int | None = None) -> int | None:
        records = self._trie.get(key) if key else None
        return records[0][0] if records else default


class _Tags:
    """``jieba.posseg``'s ``word_tag_tab``: a word -> its POS tag."""

    __slots__ = ("_trie",)

    def __init__(self, trie: Any) -> None:
        self._trie = trie

    def get(self, key: str, default: str | None = None) -> str | None:
        records = self._trie.get(key) if key else None
        tag = records[0][1].rstrip(b"\0") if records else b""
        return tag.decode("ascii") if tag else default


def use(path: Path) -> None:
    """Point jieba's default tokenizer and ``jieba.posseg`` at the trie at ``path``.

    Must run before anything imports ``jieba.posseg``: its import builds the POS tokenizer, which
    reads the dictionary file named by the default tokenizer, here an empty one. FileNotFoundError
    when there is no trie (the model dir predates it, or was never built)."""
    import jieba

    if not path.is_file():
        raise FileNotFoundError(f"no jieba dictionary at {path}")
    trie = marisa_trie.RecordTrie(_RECORD).mmap(str(path))
    tokenizer = jieba.dt
    with tokenizer.lock:
        tokenizer.FREQ = _Frequencies(trie)
        tokenizer.total = trie[_TOTAL_KEY][0][0]
        tokenizer.initialized = True
    dictionary, tokenizer.dictionary = tokenizer.dictionary, os.devnull
    try:
        import jieba.posseg
    finally:
        tokenizer.dictionary = dictionary
    jieba.posseg.dt.word_tag_tab = _Tags(trie)


def pos_cut(text: str) -> list[tuple[str, str]]:
    """``text`` as jieba's words with their POS tags (its HMM guessing unknown words)."""
    import jieba.posseg

    return [(pair.word, pair.flag) for pair in jieba.posseg.lcut(text, HMM=True)]
