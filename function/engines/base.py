"""The engine interface every TTS backend implements.

An engine is constructed cheaply (metadata only: voices, sample rate, model version) so that
the health check, the voice list and cache hits never pay for a model load. ``load()`` does the
heavy work once per process; ``synthesize()`` turns one sentence into float32 samples.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class Voice:
    """A voice this deployment can speak with."""

    id: str
    language: str  # BCP-47 tag, e.g. "en-US", "zh-CN"
    description: str = ""
    aliases: tuple[str, ...] = ()

    def speaks(self, language: str) -> bool:
        """True when ``language`` (e.g. "en" or "en-GB") is this voice's language or its base language."""
        want = language.lower()
        have = self.language.lower()
        return want == have or want == have.split("-")[0]


class EngineLoadError(RuntimeError):
    """The model could not be loaded; the request may succeed later (a 503, or a retried event)."""


class Engine(ABC):
    """One TTS backend. Subclasses set the class attributes and implement the three methods."""

    name: ClassVar[str]
    sample_rate: ClassVar[int]
    # The speeds the model itself supports; callers' speeds are validated or clamped to this.
    speed_range: ClassVar[tuple[float, float]] = (0.5, 2.0)
    # A conservative CPU estimate of synthesis seconds per input character, used to refuse up front
    # a text that cannot be synthesized inside the request timeout.
    seconds_per_char: ClassVar[float] = 0.01

    @property
    @abstractmethod
    def model_version(self) -> str:
        """Identifies the weights: part of every cache key, so new weights never serve old audio."""

    @abstractmethod
    def voices(self) -> list[Voice]:
        """The voices available without loading the model."""

    @property
    def default_voice(self) -> str:
        return self.voices()[0].id

    @property
    def openai_voices(self) -> dict[str, str]:
        """Default mapping of OpenAI's built-in voice names onto this engine's voices."""
        return {}

    @abstractmethod
    def load(self) -> None:
        """Load the model into memory. Called once per process; raises EngineLoadError on failure."""

    @abstractmethod
    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        """One sentence (already normalised and split) to mono float32 samples at ``sample_rate``.

        ``voice`` is a canonical voice id from ``voices()``; ``speed`` lies within ``speed_range``.
        Output must be deterministic for the same inputs: objects are content-addressed.
        """
