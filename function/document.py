"""What a marked-up request says, engine-neutral: utterances of segments, and breaks between them.

SSML (``function.ssml``) and lexicons (``function.lexicons``) build it; ``pipeline.plan`` checks it
against the chosen engine and voice; ``Engine.speak_document`` speaks it. A plain-text request
never builds one. Every segment and utterance keeps where it came from in the string the caller
sent (``start``/``end``: character offsets into ``ssml``, or into ``text``), so sentence marks can
point back at the caller's input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, is_dataclass, replace
from typing import Literal

Alphabet = Literal["ipa", "pinyin"]


@dataclass(frozen=True)
class Phoneme:
    """A pronunciation the caller gave: IPA, or Hanyu Pinyin (tone numbers or marks)."""

    alphabet: Alphabet
    ph: str


@dataclass(frozen=True)
class Segment:
    """A run of an utterance spoken one way. ``text`` is what is said in characters (the alias of
    a ``<sub>``, the words a ``<phoneme>`` covers): it is what limits count and routing reads."""

    text: str
    start: int
    end: int
    phoneme: Phoneme | None = None
    say_as: str | None = None  # interpret-as, until ``pipeline.plan`` reads it out for the voice
    say_as_format: str | None = None
    # The element that made this segment, for errors: "phoneme", "sub", "say-as", "lexicon:<name>".
    source: str = ""


@dataclass(frozen=True)
class Utterance:
    """What a model says at once (a sentence, or the part of one that a rate or a language
    change sets apart), at ``rate`` times the request's speed."""

    segments: tuple[Segment, ...]
    rate: float = 1.0
    lang: str | None = None

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    @property
    def start(self) -> int:
        return self.segments[0].start

    @property
    def end(self) -> int:
        return self.segments[-1].end

    @property
    def has_phonemes(self) -> bool:
        return any(s.phoneme is not None for s in self.segments)


class Spanned(str):
    """A piece of text an engine speaks that knows which characters of the caller's input it came
    from (speech marks read ``source_span`` instead of looking for the text there)."""

    source_span: tuple[int, int]

    def __new__(cls, text: str, span: tuple[int, int]) -> Spanned:
        spanned = super().__new__(cls, text)
        spanned.source_span = span
        return spanned


@dataclass(frozen=True)
class Break:
    """Silence the caller asked for (``<break>``): it replaces the pause between sentences there."""

    seconds: float
    start: int
    end: int


Item = Utterance | Break


@dataclass(frozen=True)
class Element:
    """An element of the caller's markup that holds others (``speak``, ``p``, ``s``, ``prosody``,
    ``lang``): its attributes, and where it is (``start``: its ``<``; ``end``: one past its end
    tag). A job cut inside it re-opens it in the next part (``function.jobs.markup_parts``)."""

    name: str
    attrs: tuple[tuple[str, str], ...]
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """A request as utterances and breaks, in order; ``language`` from ``<speak xml:lang>``."""

    items: tuple[Item, ...]
    language: str | None = None
    # (name, sha256 of its file) of each lexicon applied: part of the audio key.
    lexicons: tuple[tuple[str, str], ...] = field(default=())
    # The request field it came from ("ssml", or "text" with text_type "ssml"): errors name it.
    source: str = "ssml"
    # The markup's elements that hold others (not part of what is said, nor of the key).
    elements: tuple[Element, ...] = field(default=(), compare=False, repr=False)

    @property
    def utterances(self) -> list[Utterance]:
        return [item for item in self.items if isinstance(item, Utterance)]

    @property
    def text(self) -> str:
        """What is said, in characters: utterances joined by line breaks (the limits count it)."""
        return "\n".join(u.text.strip() for u in self.utterances if u.text.strip())

    @property
    def segments(self) -> list[Segment]:
        return [s for u in self.utterances for s in u.segments]

    def key(self) -> str:
        """What the audio key hashes for this document: every utterance, segment, break and
        lexicon hash, less the offsets (the same speech from differently laid-out markup is the
        same audio). Prefixed so it can never equal a plain text."""
        items = [_keyed(item) for item in self.items]
        canonical = json.dumps([items, self.language, self.lexicons], ensure_ascii=False)
        return f"ssml-document:{hashlib.sha256(canonical.encode()).hexdigest()}"

    def with_utterances(self, change: Callable[[Utterance], Utterance]) -> Document:
        """The document with ``change`` applied to each utterance (breaks kept)."""
        items = tuple(change(i) if isinstance(i, Utterance) else i for i in self.items)
        return replace(self, items=items)


# Not what is said: left out of the key (a segment's ``source`` only names what made it, for errors).
_UNKEYED = frozenset(["start", "end", "source"])


def _keyed(item: Item) -> dict[str, object]:
    return {"kind": type(item).__name__, **_fields(item)}


def _fields(value: object) -> dict[str, object]:
    """A dataclass's fields as ``dataclasses.asdict`` gives them, less the unkeyed ones: the same
    JSON (so the same keys) at a fraction of the cost (``asdict`` deep-copies every string)."""
    out: dict[str, object] = {}
    for name in value.__dataclass_fields__:  # type: ignore[attr-defined]
        if name in _UNKEYED:
            continue
        field_value = getattr(value, name)
        if isinstance(field_value, tuple):
            out[name] = [_fields(v) if is_dataclass(v) else v for v in field_value]
        else:
            out[name] = _fields(field_value) if is_dataclass(field_value) else field_value
    return out


def plain(text: str) -> Document:
    """A plain text as a document of one utterance (what lexicons are applied to)."""
    return Document((Utterance((Segment(text, 0, len(text)),)),), source="text")
