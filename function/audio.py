"""Audio encoding with soundfile (libsndfile): the formats this service writes and their MIME types."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class AudioFormat:
    name: str
    content_type: str
    container: str  # libsndfile major format
    subtype: str
    # Rates the codec accepts; audio at any other rate is resampled to the nearest higher one.
    sample_rates: tuple[int, ...] = ()

    @property
    def extension(self) -> str:
        return self.name


FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        AudioFormat("wav", "audio/wav", "WAV", "PCM_16"),
        AudioFormat("flac", "audio/flac", "FLAC", "PCM_16"),
        AudioFormat("mp3", "audio/mpeg", "MP3", "MPEG_LAYER_III"),
        AudioFormat("ogg", "audio/ogg", "OGG", "VORBIS"),
        AudioFormat("opus", "audio/ogg; codecs=opus", "OGG", "OPUS", (8000, 12000, 16000, 24000, 48000)),
        # Headerless 16-bit little-endian mono, as OpenAI's "pcm"; the rate is in the response.
        AudioFormat("pcm", "audio/pcm", "RAW", "PCM_16"),
    )
}
# Frames handed to libsndfile per write call. Its Vorbis encoder crashes the process (a segfault)
# when one call passes more than about 87 s of audio; every format is written in blocks this size.
WRITE_BLOCK_FRAMES = 1 << 16
# Formats clients may ask for that libsndfile cannot encode (named in the 400 so it is clearly a limit).
UNSUPPORTED = {"aac": "libsndfile has no AAC encoder"}


def output_rate(fmt: AudioFormat, sample_rate: int) -> int:
    if not fmt.sample_rates or sample_rate in fmt.sample_rates:
        return sample_rate
    return min((r for r in fmt.sample_rates if r > sample_rate), default=max(fmt.sample_rates))


def encode(samples: np.ndarray, sample_rate: int, fmt: AudioFormat) -> tuple[bytes, int]:
    """Mono float32 samples to the bytes of ``fmt``; returns the bytes and the encoded sample rate."""
    rate = output_rate(fmt, sample_rate)
    if rate != sample_rate:
        import soxr  # only the formats with fixed rates need it

        samples = soxr.resample(samples, sample_rate, rate)
    samples = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    buffer = io.BytesIO()
    endian = {"endian": "LITTLE"} if fmt.container == "RAW" else {}
    with sf.SoundFile(buffer, "w", rate, 1, format=fmt.container, subtype=fmt.subtype, **endian) as out:
        for start in range(0, len(samples), WRITE_BLOCK_FRAMES):
            out.write(samples[start : start + WRITE_BLOCK_FRAMES])
    return buffer.getvalue(), rate


def silence(seconds: float, sample_rate: int) -> np.ndarray:
    return np.zeros(round(seconds * sample_rate), dtype=np.float32)
