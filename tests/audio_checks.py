"""Assertions on audio itself: it decodes, at the right rate, for a sane duration, and is not silence."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.samples)))) if len(self.samples) else 0.0


def decode(data: bytes, fmt: str = "wav", pcm_rate: int | None = None) -> Decoded:
    """Decode any format the service writes (raw PCM needs its rate from the response)."""
    if fmt == "pcm":
        assert pcm_rate, "raw PCM carries no header: pass the rate from the response"
        assert len(data) % 2 == 0, "16-bit PCM must have an even byte count"
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768
        return Decoded(samples, pcm_rate)
    samples, rate = sf.read(io.BytesIO(data), dtype="float32")
    return Decoded(samples, rate)


def assert_speech(
    audio: Decoded, sample_rate: int, min_s: float = 0.3, max_s: float = 60.0, min_rms: float = 0.01
) -> None:
    """Speech-like audio: the expected rate, a plausible length, and energy well above silence."""
    assert audio.sample_rate == sample_rate, f"sample rate {audio.sample_rate}, expected {sample_rate}"
    assert min_s <= audio.duration_s <= max_s, f"duration {audio.duration_s:.2f} s not in [{min_s}, {max_s}]"
    assert audio.rms >= min_rms, f"RMS {audio.rms:.5f}: silence"
    assert np.isfinite(audio.samples).all()
    assert np.abs(audio.samples).max() <= 1.0


def longest_silence_s(samples: np.ndarray, rate: int, threshold: float = 1e-3) -> float:
    """The longest run of 10 ms windows whose peak stays under ``threshold``, in seconds."""
    window = rate // 100
    peaks = np.abs(samples[: len(samples) // window * window]).reshape(-1, window).max(axis=1)
    longest = current = 0
    for quiet in peaks < threshold:
        current = current + 1 if quiet else 0
        longest = max(longest, current)
    return longest / 100
