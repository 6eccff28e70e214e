"""CosyVoice-300M-SFT on CPU: a lite runtime in plain torch, loading upstream's checkpoints.

Constructing the engine reads only metadata (speaker names, weights version) and never imports
torch; ``load()`` imports torch and builds the model (``runtime.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from function.engines.base import Engine, EngineLoadError, Voice
from function.engines.cosyvoice import metadata, wetext
from function.engines.cosyvoice.precision import Precision, label

if TYPE_CHECKING:
    from function.engines.cosyvoice.runtime import CosyVoiceRuntime

# The SFT model's built-in speakers: an ASCII alias, a BCP-47 language, a description and the
# other languages it reads inside its own (the model speaks mixed Chinese-English text; Cantonese
# is written in Han characters).
KNOWN_SPEAKERS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "中文女": ("zh-female", "zh-CN", "Mandarin Chinese, female", ("en",)),
    "中文男": ("zh-male", "zh-CN", "Mandarin Chinese, male", ("en",)),
    "日语男": ("ja-male", "ja-JP", "Japanese, male", ()),
    "粤语女": ("yue-female", "yue-HK", "Cantonese, female", ("zh", "en")),
    "英文女": ("en-female", "en-US", "English, female", ()),
    "英文男": ("en-male", "en-US", "English, male", ()),
    "韩语女": ("ko-female", "ko-KR", "Korean, female", ()),
}
OPENAI_FEMALE = ("alloy", "nova", "shimmer", "coral", "sage", "marin")
OPENAI_MALE = ("echo", "onyx", "fable", "ash", "verse", "ballad", "cedar")
# Streamed audio (upstream's stream mode) is stored under its own key with this variant name.
STREAM_VARIANT = "stream"


class CosyVoiceEngine(Engine):
    name: ClassVar[str] = "cosyvoice"
    sample_rate: ClassVar[int] = 22050
    # Upstream changes speed by resampling the mel spectrogram in time (non-streaming mode only).
    speed_range: ClassVar[tuple[float, float]] = (0.5, 2.0)
    # ~0.12 s per speech token on 2 vCPUs (loadtest/bench_cosyvoice.py) x ~11 tokens per Chinese
    # character (the slowest to speak) is ~1.35 s; the guard's 80 % budget covers the rest.
    # README "Limits for CosyVoice".
    seconds_per_char: ClassVar[float] = 1.2
    # Upstream's inference_sft normalises the text itself (frontend.py does the same).
    takes_raw_text: ClassVar[bool] = True

    def __init__(self, model_dir: Path, threads: int | None = None, precision: Precision = "fp32") -> None:
        self.model_dir = Path(model_dir)
        self.threads = threads
        self.precision = precision
        self._speakers: list[str] | None = None
        self._version: str | None = None
        self._runtime: CosyVoiceRuntime | None = None

    def _speaker_names(self) -> list[str]:
        if self._speakers is None:
            try:
                self._speakers = metadata.speakers(self.model_dir)
            except (OSError, KeyError, ValueError) as exc:
                raise EngineLoadError(f"cannot read the speakers of {self.model_dir}: {exc}") from exc
        return self._speakers

    @property
    def model_version(self) -> str:
        if self._version is None:
            try:
                version = f"cosyvoice-300m-sft-{metadata.weights_version(self.model_dir)}"
                # Upstream's text normaliser reads numbers, dates and units other than the rules do.
                if wetext.ready(self.model_dir / wetext.GRAMMAR_DIR):
                    version = f"{version}-wetext"
                # Another precision gives other audio, so it must give other cache keys.
                stages = label(self.precision)
                self._version = version if stages == "fp32" else f"{version}-{stages}"
            except OSError as exc:
                raise EngineLoadError(f"cannot read the weights of {self.model_dir}: {exc}") from exc
        return self._version

    def voices(self) -> list[Voice]:
        voices = []
        for speaker in self._speaker_names():
            alias, language, description, also_reads = KNOWN_SPEAKERS.get(speaker, ("", "und", "", ()))
            voices.append(Voice(speaker, language, description, (alias,) if alias else (), also_reads))
        return voices

    @property
    def openai_voices(self) -> dict[str, dict[str, str]]:
        speakers = set(self._speaker_names())
        tables: dict[str, dict[str, str]] = {}
        for language, female, male in (("en", "英文女", "英文男"), ("zh", "中文女", "中文男")):
            for names, speaker in ((OPENAI_FEMALE, female), (OPENAI_MALE, male)):
                if speaker in speakers:
                    tables.setdefault(language, {}).update(dict.fromkeys(names, speaker))
        return tables

    def load(self) -> None:
        self._loaded_runtime()

    def _loaded_runtime(self) -> CosyVoiceRuntime:
        """The runtime, loaded (torch imported, weights mapped) on first use."""
        if self._runtime is None:
            from function.engines.cosyvoice.runtime import load_runtime

            self._runtime = load_runtime(self.model_dir, threads=self.threads, precision=self.precision)
        return self._runtime

    def pieces(self, text: str) -> list[str]:
        # Upstream's own front end: numbers read in words, then pieces of 60-80 characters or tokens.
        return self._loaded_runtime().pieces(text)

    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        return self._loaded_runtime().synthesize(text, voice, speed, _seed(text, voice, speed))

    def speak_streamed(self, text: str, voice: str, speed: float, pause_s: float) -> Iterator[np.ndarray]:
        """Upstream's stream mode: each piece's audio every 100 speech tokens (``streamed.py``),
        the pieces ``speak``'s. Upstream changes speed only when not streaming: other speeds are
        spoken whole, piece by piece, as ``speak`` does."""
        if self.streamed_variant(speed) is None:
            return self.speak(text, voice, speed, pause_s)
        runtime = self._loaded_runtime()
        return self._spoken(
            text, pause_s, lambda piece: runtime.synthesize_streamed(piece, voice, _seed(piece, voice, speed))
        )

    def streamed_variant(self, speed: float) -> str | None:
        # Hop-by-hop decoding is another computation (overlaps, cross-fades): other samples.
        return STREAM_VARIANT if speed == 1.0 else None


def _seed(piece: str, voice: str, speed: float) -> int:
    """The same piece, voice and speed always draw the same random numbers."""
    return int.from_bytes(hashlib.sha256(f"{voice}\n{speed}\n{piece}".encode()).digest()[:8], "big")
