"""Pronunciation lexicons: W3C PLS files (the format Polly takes) that say how a word is read.

A deployment bakes them into a directory (``TTS_LEXICON_DIR``: ``<name>.pls``, parsed once, at
first use), or keeps them in its input bucket under ``TTS_LEXICON_PREFIX`` (named by their gs://
URI, looked up on every use so an edit takes effect at once: ``from_bucket``), and may name some that
every request uses (``TTS_LEXICONS``); a request names its own (``lexicons``). A lexeme's
grapheme is matched in the caller's text before any normalisation, so an entry beats every rule
of every front end: it becomes a ``<phoneme>`` (pinyin, ``x-pinyin``, or IPA) or a ``<sub>``
(``<alias>``) segment. Earlier lexicons win; a longer grapheme wins over a
shorter one at the same place. Parsed with defusedxml (no DTDs, no entities), like SSML.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from function.config import Settings
from function.document import Alphabet, Document, Phoneme, Segment, Utterance
from function.errors import ApiError, bad_field
from function.phonetics import numbered_pinyin
from function.storage import ObjectStore

MAX_LEXICON_BYTES = 1024 * 1024
_ALPHABETS: dict[str, Alphabet] = {"ipa": "ipa", "x-pinyin": "pinyin", "pinyin": "pinyin"}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Entry:
    """How one grapheme is read: a pronunciation, or another text to read instead."""

    phoneme: Phoneme | None
    alias: str | None


@dataclass(frozen=True)
class Lexicon:
    name: str
    sha256: str  # of the file: an edited lexicon gives other audio keys
    # Not compared: the name and the content hash say what it holds (a lexicon is a cache key).
    entries: dict[str, Entry] = field(compare=False)


def parse(name: str, content: bytes) -> Lexicon:
    """A PLS document's lexemes, or a 400 ``invalid_lexicon`` naming the file and the problem."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    def refuse(problem: str) -> ApiError:
        return ApiError(400, "invalid_lexicon", f"lexicon {name!r}: {problem}", field="lexicons")

    if len(content) > MAX_LEXICON_BYTES:
        raise refuse(f"has {len(content)} bytes; the limit is {MAX_LEXICON_BYTES}")
    try:
        root = fromstring(content, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ParseError) as exc:
        raise refuse(f"is not a PLS document: {exc}") from None
    if _local(root.tag) != "lexicon":
        raise refuse(f"its root is <{_local(root.tag)}>, not <lexicon>")
    default = root.get("alphabet", "ipa")
    entries: dict[str, Entry] = {}
    for lexeme in (child for child in root if _local(child.tag) == "lexeme"):
        parts = {_local(c.tag): c for c in lexeme}
        grapheme = (parts["grapheme"].text or "").strip() if "grapheme" in parts else ""
        if not grapheme:
            raise refuse("a <lexeme> has no <grapheme>")
        if "alias" in parts and (parts["alias"].text or "").strip():
            entries.setdefault(grapheme, Entry(None, " ".join(parts["alias"].text.split())))
            continue
        if "phoneme" not in parts or not (parts["phoneme"].text or "").strip():
            raise refuse(f"the lexeme {grapheme!r} has neither a <phoneme> nor an <alias>")
        alphabet = parts["phoneme"].get("alphabet", default)
        if alphabet not in _ALPHABETS:
            raise refuse(f"alphabet {alphabet!r} of {grapheme!r} is not one of {', '.join(_ALPHABETS)}")
        ph = " ".join(parts["phoneme"].text.split())
        if _ALPHABETS[alphabet] == "pinyin":
            try:
                numbered_pinyin(ph)
            except ValueError as exc:
                raise refuse(f"the lexeme {grapheme!r}: {exc}") from None
        entries.setdefault(grapheme, Entry(Phoneme(_ALPHABETS[alphabet], ph), None))
    return Lexicon(name, hashlib.sha256(content).hexdigest(), entries)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class Library:
    """The lexicons of a directory, each parsed on first use and kept (files are baked in)."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        self._parsed: dict[str, Lexicon] = {}

    def names(self) -> list[str]:
        if self._directory is None or not self._directory.is_dir():
            return []
        return sorted(p.stem for p in self._directory.glob("*.pls"))

    def get(self, name: str) -> Lexicon:
        with _LOCK:
            if name not in self._parsed:
                known = self.names()
                if name not in known:
                    listed = ", ".join(known) or "none (TTS_LEXICON_DIR)"
                    raise bad_field(
                        "lexicons", f"unknown lexicon {name!r}; known: {listed}", code="unknown_lexicon"
                    )
                assert self._directory is not None
                self._parsed[name] = parse(name, (self._directory / f"{name}.pls").read_bytes())
            return self._parsed[name]


_libraries: dict[Path | None, Library] = {}


def resolve(name: str, settings: Settings) -> Lexicon:
    """The lexicon ``name`` names: an object in the input bucket (a gs:// URI), or a baked-in one."""
    if name.startswith("gs://"):
        return from_bucket(name, settings)
    return library(settings.lexicon_dir).get(name)


def from_bucket(uri: str, settings: Settings) -> Lexicon:
    """The lexicon stored at ``uri``: only under the lexicon prefix of the deployment's input
    bucket (never another bucket), at most ``MAX_LEXICON_BYTES``. Looked up on each use and read
    and parsed once per generation (an edited object is a new generation, so it is read again and
    its new content hash gives new audio keys at once). A missing object is a 400
    ``unknown_lexicon``; storage trouble raises (a 503, or an event's retry)."""
    from function.jobs.request import input_store

    bucket, _, path = uri.removeprefix("gs://").partition("/")
    prefix = settings.lexicon_prefix
    if settings.input_bucket is None or bucket != settings.input_bucket or not path.startswith(prefix):
        where = f"gs://{settings.input_bucket}/{prefix}<name>" if settings.input_bucket else "none here"
        raise bad_field("lexicons", f"{uri[:200]!r} is not a lexicon of this deployment's bucket ({where})")
    inputs = input_store(bucket)
    stored = inputs.stat(path)
    if stored is None:
        raise bad_field("lexicons", f"unknown lexicon {uri!r}: no such object", code="unknown_lexicon")
    if stored.size > MAX_LEXICON_BYTES:
        raise ApiError(
            400,
            "invalid_lexicon",
            f"lexicon {uri!r}: has {stored.size} bytes; the limit is {MAX_LEXICON_BYTES}",
            field="lexicons",
        )
    if not stored.generation:  # a store that cannot tell an edit: read it every time
        return parse(uri, inputs.read(path))
    return _at_generation(inputs, path, uri, stored.generation)


@lru_cache(maxsize=32)
def _at_generation(inputs: ObjectStore, path: str, uri: str, generation: str) -> Lexicon:
    """The lexicon at ``uri`` as ``generation`` of its object holds it: a warm instance pays one
    metadata read per use, not a download and a parse. Its hash is of the bytes read (an edit
    landing between the look-up and the read is keyed by what was read: never stale audio)."""
    return parse(uri, inputs.read(path))


def library(directory: Path | None) -> Library:
    """The process's library for ``directory``: parsed lexicons outlive requests."""
    return _libraries.setdefault(directory, Library(directory))


def apply(document: Document, lexicons: list[Lexicon]) -> Document:
    """``document`` with each grapheme of the lexicons in its plain text read as its entry says."""
    entries, pattern = _matcher(tuple(lexicons))
    hashes = tuple((lexicon.name, lexicon.sha256) for lexicon in lexicons)
    if pattern is None:
        return replace(document, lexicons=hashes)

    def change(utterance: Utterance) -> Utterance:
        segments: list[Segment] = []
        for segment in utterance.segments:
            plain = segment.phoneme is None and segment.say_as is None and not segment.source
            segments.extend(_split(segment, pattern, entries) if plain else [segment])
        return replace(utterance, segments=tuple(segments))

    return replace(document.with_utterances(change), lexicons=hashes)


@lru_cache(maxsize=32)
def _matcher(lexicons: tuple[Lexicon, ...]) -> tuple[dict[str, tuple[str, Entry]], re.Pattern[str] | None]:
    """Each grapheme of ``lexicons`` with its lexicon's name and entry (the first lexicon that has
    it wins), and one pattern that finds them all, longer first (None: no graphemes). Built once per
    set of lexicons, not per request (a 2,000-entry lexicon: ~1.6 ms a request less)."""
    entries: dict[str, tuple[str, Entry]] = {}
    for lexicon in lexicons:
        for grapheme, entry in lexicon.entries.items():
            entries.setdefault(grapheme, (lexicon.name, entry))
    if not entries:
        return entries, None
    return entries, re.compile("|".join(_grapheme_pattern(g) for g in sorted(entries, key=len, reverse=True)))


def _grapheme_pattern(grapheme: str) -> str:
    """A grapheme as a pattern: a word in Latin script only as a whole word (not "cat" in "catch")."""
    escaped = re.escape(grapheme)
    before = r"(?<![A-Za-z0-9])" if grapheme[0].isascii() and grapheme[0].isalnum() else ""
    after = r"(?![A-Za-z0-9])" if grapheme[-1].isascii() and grapheme[-1].isalnum() else ""
    return f"{before}{escaped}{after}"


def _split(
    segment: Segment, pattern: re.Pattern[str], entries: dict[str, tuple[str, Entry]]
) -> list[Segment]:
    out: list[Segment] = []
    position = 0
    text = segment.text

    def at(index: int) -> int:
        # Offsets of the caller's text; a segment whose text differs from its markup in length
        # (an entity reference) maps onto its span's end at most.
        return min(segment.start + index, segment.end)

    for match in pattern.finditer(text):
        if match.start() > position:
            out.append(Segment(text[position : match.start()], at(position), at(match.start())))
        name, entry = entries[match.group()]
        start, end = at(match.start()), at(match.end())
        source = f"lexicon:{name}"
        if entry.alias is not None:
            out.append(Segment(entry.alias, start, end, source=source))
        else:
            out.append(Segment(match.group(), start, end, phoneme=entry.phoneme, source=source))
        position = match.end()
    if position < len(text):
        out.append(Segment(text[position:], at(position), at(len(text))))
    return out or [segment]
