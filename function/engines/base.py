"""The engine interface every TTS backend implements.

An engine is constructed cheaply (metadata only: voices, sample rate, model version) so that
the health check, the voice list and cache hits never pay for a model load. ``load()`` does the
heavy work once per process. Engines own their text: ``pieces()`` splits (and, where the engine
needs it, normalises) the request's text into what the model speaks at once, and
``synthesize()`` turns one piece into float32 samples. ``speak()`` strings the pieces together;
``speak_streamed()`` does it for a stream, where an engine may hand out a piece's audio in parts.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from function.document import Break, Document, Phoneme, Segment, Spanned, Utterance
from function.text import split_sentences

# Instances serve one request at a time; the lock only keeps a misconfigured multi-threaded
# server from loading a model twice.
_LOAD_LOCK = threading.Lock()


def base_language(tag: str) -> str:
    """ "zh-CN" -> "zh": the part of a BCP-47 tag that routing and refusals compare."""
    return tag.lower().split("-")[0]


@dataclass(frozen=True)
class Voice:
    """A voice this deployment can speak with."""

    id: str
    language: str  # BCP-47 tag of the voice's own language, e.g. "en-US", "zh-CN"
    description: str = ""
    aliases: tuple[str, ...] = ()
    # Other languages (base tags) the voice reads inside its own: a Mandarin voice that says the
    # English words of mixed Chinese-English text lists "en". Routing never picks a voice for these.
    also_reads: tuple[str, ...] = ()

    def speaks(self, language: str) -> bool:
        """True when ``language`` (e.g. "en" or "en-GB") is this voice's language or its base language."""
        want = language.lower()
        have = self.language.lower()
        return want == have or want == base_language(have)

    def reads(self, language: str) -> bool:
        """True when text in ``language`` (a base tag) can be given to this voice."""
        return self.speaks(language) or base_language(language) in self.also_reads


@dataclass(frozen=True)
class TimedWord:
    """A word the engine spoke, as its front end wrote it, and where: samples from the start of
    the audio it was reported with (``Listener.words``)."""

    text: str
    start: int
    end: int


class Listener(Protocol):
    """Told what an engine speaks while it speaks (speech marks, ``function.marks``): each piece as
    it begins, each chunk's length in order (the pauses between pieces apart), and the words of
    the next chunk where the engine knows their timing. Set for one synthesis with
    ``Engine.listening``."""

    def piece(self, text: str) -> None: ...

    def audio(self, samples: int) -> None: ...

    def pause(self, samples: int) -> None: ...

    def words(self, words: list[TimedWord]) -> None: ...


class EngineLoadError(RuntimeError):
    """The model could not be loaded; the request may succeed later (a 503, or a retried event)."""


class Engine(ABC):
    """One TTS backend. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    sample_rate: ClassVar[int]
    # The speeds the model itself supports; callers' speeds are validated or clamped to this.
    speed_range: ClassVar[tuple[float, float]] = (0.5, 2.0)
    # A conservative CPU estimate of synthesis seconds per input character, used to refuse up front
    # a text that cannot be synthesized inside the request timeout.
    seconds_per_char: ClassVar[float] = 0.01
    # True for an engine whose own front end must see the caller's text as sent (CosyVoice: its
    # pieces then equal upstream's for full-width spaces, CR line ends, combining accents). Limits
    # still count the normalised text; the cache key is made of the text the engine receives.
    takes_raw_text: ClassVar[bool] = False
    # Told what is spoken, while ``listening``; None (the plain path) costs one check per chunk.
    listener: Listener | None = None

    @property
    @abstractmethod
    def model_version(self) -> str:
        """Identifies the weights: part of every cache key, so new weights never serve old audio."""

    @abstractmethod
    def voices(self) -> list[Voice]:
        """The voices available without loading the model."""

    def times_words(self) -> bool:
        """Whether ``synthesize`` tells the listener when each word is said (``TimedWord``); the
        others give sentence marks only (``function.marks``)."""
        return False

    @property
    def default_voice(self) -> str:
        return self.voices()[0].id

    @property
    def openai_voices(self) -> dict[str, dict[str, str]]:
        """OpenAI's built-in voice names onto this engine's voices, per base language:
        ``{"en": {"alloy": "heart", ...}, "zh": {"alloy": "zf_xiaobei", ...}}``."""
        return {}

    @abstractmethod
    def load(self) -> None:
        """Load the model into memory. Called once per process; raises EngineLoadError on failure."""

    _loaded: bool = False
    # Why the last load failed (the health check reports that it did), None until one fails.
    load_error: str | None = None

    @property
    def is_loaded(self) -> bool:
        return self._loaded

    def ensure_loaded(self) -> float | None:
        """Load the model on first use and keep it; the load time in ms when this call paid it."""
        with _LOAD_LOCK:
            if self._loaded:
                return None
            started = time.perf_counter()
            try:
                self.load()
            except EngineLoadError as exc:
                self.load_error = str(exc)
                raise
            self._loaded = True
            self.load_error = None
            return (time.perf_counter() - started) * 1000

    def pieces(self, text: str) -> list[str]:
        """Normalised request text -> the pieces the model speaks one at a time (default: sentences).

        Engines with their own text front end (number reading, a model's length limits) override it.
        """
        return split_sentences(text)

    @abstractmethod
    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        """One piece (from ``pieces()``) to mono float32 samples at ``sample_rate``.

        ``voice`` is a canonical voice id from ``voices()``; ``speed`` lies within ``speed_range``.
        Output must be deterministic for the same inputs: objects are content-addressed.
        """

    def speak(self, text: str, voice: str, speed: float, pause_s: float) -> Iterator[np.ndarray]:
        """Audio for a whole text, a chunk at a time: each piece, with ``pause_s`` of silence between."""
        return self._spoken(text, pause_s, lambda piece: (self.synthesize(piece, voice, speed),))

    def speak_streamed(self, text: str, voice: str, speed: float, pause_s: float) -> Iterator[np.ndarray]:
        """``speak`` for a listener who is waiting: engines that can hand out a piece's audio before
        the piece is done override it (and ``streamed_variant``); by default, ``speak`` itself."""
        return self.speak(text, voice, speed, pause_s)

    def streamed_variant(self, speed: float) -> str | None:
        """A name for ``speak_streamed``'s audio at ``speed`` when it differs from ``speak``'s
        (storage keeps it under its own key), None when they are the same samples."""
        return None

    @contextmanager
    def listening(self, listener: Listener) -> Iterator[None]:
        """Tell ``listener`` what this engine speaks until the block ends (one synthesis at a time:
        instances serve one request at a time)."""
        self.listener = listener
        try:
            yield
        finally:
            self.listener = None

    def _spoken(
        self,
        text: str,
        pause_s: float,
        say: Callable[[str], Iterable[np.ndarray]],
        span: tuple[int, int] | None = None,
    ) -> Iterator[np.ndarray]:
        """The chunks ``say`` gives for each piece of ``text``, with ``pause_s`` of silence between
        pieces; the listener, if any, hears of each piece and chunk as they are yielded (each piece
        as coming from ``span`` of the caller's input when given: an SSML utterance's)."""
        pause = np.zeros(round(pause_s * self.sample_rate), dtype=np.float32)
        for index, piece in enumerate(self.pieces(text)):
            if index and len(pause):
                self._silence(pause)
                yield pause
            told = piece if span is None else Spanned(piece, span)
            yield from self._heard(told, lambda piece=piece: say(piece))

    def _heard(self, piece: str, chunks: Callable[[], Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
        """The chunks ``chunks()`` makes, the listener (if any) told of ``piece`` before they are
        made (an engine reports its words while it speaks) and of each chunk's length."""
        if self.listener is not None:
            self.listener.piece(piece)
        for chunk in chunks():
            if self.listener is not None:
                self.listener.audio(len(chunk))
            yield chunk

    def _silence(self, samples: np.ndarray) -> None:
        if self.listener is not None:
            self.listener.pause(len(samples))

    # -- SSML and lexicons (function.document): what pipeline.plan checks, and how it is spoken ----

    def phoneme_alphabets(self, voice: Voice) -> frozenset[str]:
        """The ``<phoneme>`` alphabets ``voice`` honours; none by default (an engine that reads
        characters through its own front end cannot take a pronunciation)."""
        return frozenset()

    def phoneme_problem(self, phoneme: Phoneme, voice: Voice) -> str | None:
        """Why ``voice`` cannot say ``phoneme`` (a symbol it has no id for), None when it can."""
        return None

    def prepared(self, document: Document, voice: Voice, speed: float) -> Document:
        """``document`` as this engine speaks it with ``voice`` (say-as written out), or a 400
        naming the element this engine cannot honour: decided before anything is synthesized."""
        from function.speaking import prepare

        return prepare(self, document, voice, speed)

    def speak_document(
        self, document: Document, voice: str, speed: float, pause_s: float
    ) -> Iterator[np.ndarray]:
        """A document's audio: each utterance at its rate, ``pause_s`` between utterances, and
        exactly the break's silence where the caller put a ``<break>``."""
        pause = np.zeros(round(pause_s * self.sample_rate), dtype=np.float32)
        after_speech = False
        for item in document.items:
            if isinstance(item, Break):
                silence = np.zeros(round(item.seconds * self.sample_rate), dtype=np.float32)
                self._silence(silence)
                yield silence
                after_speech = False
                continue
            if after_speech and len(pause):
                self._silence(pause)
                yield pause
            after_speech = True
            yield from self.speak_utterance(item, voice, round(speed * item.rate, 3), pause_s)

    def speak_utterance(
        self, utterance: Utterance, voice: str, speed: float, pause_s: float
    ) -> Iterator[np.ndarray]:
        """One utterance: with pronunciations, as phonemes (``segment_phonemes``), else its text
        (aliases and say-as already written out) piece by piece, as plain text is spoken."""
        if utterance.has_phonemes or (utterance.lang is not None and self.reads_lang_by_phonemes):
            phonemes = " ".join(self.segment_phonemes(s, voice, utterance.lang) for s in utterance.segments)
            spoken = Spanned(" ".join(utterance.text.split()), (utterance.start, utterance.end))
            yield from self._heard(spoken, lambda: (self.synthesize_phonemes(phonemes, voice, speed),))
            return
        text = " ".join(utterance.text.split())
        say = lambda piece: (self.synthesize(piece, voice, speed),)  # noqa: E731
        yield from self._spoken(text, pause_s, say, (utterance.start, utterance.end))

    # An engine that speaks phonemes picks the G2P of an utterance's <lang> itself.
    reads_lang_by_phonemes: ClassVar[bool] = False

    def segment_phonemes(self, segment: Segment, voice: str, lang: str | None) -> str:
        """A segment in the model's phoneme alphabet: engines with ``phoneme_alphabets`` implement it."""
        raise NotImplementedError(f"{self.name} does not speak phonemes")

    def synthesize_phonemes(self, phonemes: str, voice: str, speed: float) -> np.ndarray:
        """A phoneme string (the model's alphabet) to samples: engines with ``phoneme_alphabets``."""
        raise NotImplementedError(f"{self.name} does not speak phonemes")
