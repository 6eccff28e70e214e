"""jieba on the memory-mapped trie (function/engines/kokoro/dictionary.py) cuts and tags exactly as
jieba on its own tables: every text of the reading test set, in two fresh processes (jieba's
tokenizers are process-wide, so the two cannot share one)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from function.engines.kokoro.files import JIEBA_TRIE

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"

# Cuts every text with jieba.posseg (words and tags, HMM on) and with jieba.cut (the default
# tokenizer's frequencies alone, HMM off), after dictionary.use(trie) when a trie is given.
_CUT = """
import json, sys
texts = json.loads(sys.stdin.read())
if len(sys.argv) > 1:
    from pathlib import Path
    from function.engines.kokoro import dictionary
    dictionary.use(Path(sys.argv[1]))
import jieba, jieba.posseg
print(json.dumps({
    "posseg": [[(p.word, p.flag) for p in jieba.posseg.lcut(t, HMM=True)] for t in texts],
    "cut": [jieba.lcut(t, HMM=False) for t in texts],
    "total": jieba.dt.total,
}, ensure_ascii=False))
"""


def _cuts(texts: list[str], *trie: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _CUT, *trie],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """The reading set's texts as spoken (Simplified, numbers in words): what jieba is given."""
    rows = [
        line.rstrip("\n").split("\t")
        for path in sorted(DATA.glob("zh_readings_*.tsv"))
        for line in path.open()
    ]
    texts = [
        text if spoken == "=" else spoken
        for _, text, spoken, *_ in (r for r in rows if len(r) > 3 and not r[0].startswith("#"))
    ]
    assert len(texts) > 300
    return texts


def test_the_trie_cuts_and_tags_like_jiebas_own_tables(kokoro_dir: Path, texts: list[str]) -> None:
    own = _cuts(texts)
    trie = _cuts(texts, str(kokoro_dir / JIEBA_TRIE))
    assert trie["total"] == own["total"]
    assert trie["cut"] == own["cut"]
    assert trie["posseg"] == own["posseg"]
    # The HMM guessed words jieba's dictionary lacks, and the tags are not all one default.
    assert len({flag for words in trie["posseg"] for _, flag in words}) > 20


def test_the_front_end_never_reads_jiebas_dictionary_file(kokoro_dir: Path) -> None:
    """Building the front end loads no dict.txt and no marshal cache: jieba is given the trie."""
    script = (
        "import sys, jieba\n"
        "from pathlib import Path\n"
        "from function.engines.kokoro.frontend import TextFrontEnd\n"
        "opened = []\n"
        "original = jieba.Tokenizer.get_dict_file\n"
        "jieba.Tokenizer.get_dict_file = lambda self: opened.append(self.dictionary) or original(self)\n"
        "front = TextFrontEnd(Path(sys.argv[1]))\n"
        "import jieba.posseg\n"
        "print(opened, type(jieba.dt.FREQ).__name__, front.phonemes('银行行长', 'zh-CN'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(kokoro_dir / JIEBA_TRIE)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    opened, kind, phonemes = done.stdout.strip().split(" ", 2)
    assert kind == "_Frequencies"
    assert phonemes  # read through the trie
    # posseg's import asked for the dictionary file once, and was given an empty one.
    assert opened == "['/dev/null']"
