"""Audio encoding with soundfile (libsndfile): the formats this service writes, their MIME types,
and an encoder that takes the audio a chunk at a time (a streamed response sends each chunk's
bytes as soon as libsndfile has written them)."""

from __future__ import annotations

import struct
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
    # Whether a stream sends bytes as they are encoded. FLAC's are held to the end: its header
    # (STREAMINFO) gets the length at close, and libsndfile cannot read a FLAC stream without it.
    streamable: bool = True
    # The encoder's first write is a placeholder it fills in at close (LAME's tag frame: length and
    # gapless info), so a stream leaves it out: the placeholder claims another bitrate, and decoders
    # that estimate the length from the first frame (libsndfile's mpg123) would cut the audio short.
    placeholder_first: bool = False
    # libsndfile's encoder settings (None: its defaults).
    bitrate_mode: str | None = None
    compression_level: float | None = None

    @property
    def extension(self) -> str:
        return self.name


FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        AudioFormat("wav", "audio/wav", "WAV", "PCM_16"),
        AudioFormat("flac", "audio/flac", "FLAC", "PCM_16", streamable=False),
        # Constant bitrate (about 64 kbit/s for 24 kHz speech): a stream has no tag to say its length,
        # and decoders estimate it from the first frame's bitrate, which only CBR makes true.
        AudioFormat(
            "mp3",
            "audio/mpeg",
            "MP3",
            "MPEG_LAYER_III",
            placeholder_first=True,
            bitrate_mode="CONSTANT",
            compression_level=0.6,
        ),
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
# A streamed WAV's RIFF and data chunk sizes: unknown while streaming, so the largest value, as
# OpenAI streams WAV (decoders read such a file to its end). Offsets in libsndfile's 44-byte header.
UNKNOWN_SIZE = 0xFFFFFFFF
WAV_SIZE_OFFSETS = (4, 40)


def output_rate(fmt: AudioFormat, sample_rate: int) -> int:
    if not fmt.sample_rates or sample_rate in fmt.sample_rates:
        return sample_rate
    return min((r for r in fmt.sample_rates if r > sample_rate), default=max(fmt.sample_rates))


class _Sink:
    """The file libsndfile writes into (its virtual I/O: write, seek, tell, read). It remembers how
    much has been handed out: libsndfile only appends while it encodes, and goes back to patch a
    header at close (WAV sizes, FLAC's STREAMINFO, MP3's LAME tag frame), which changes the stored
    file but not the bytes already streamed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.position = 0
        self.taken = 0
        self.first_write = 0  # how many bytes the first write call wrote

    def write(self, data: bytes) -> int:
        if not self.data:
            self.first_write = len(data)
        end = self.position + len(data)
        self.data[self.position : end] = data
        self.position = end
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self.position, len(self.data))[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:  # never asked for in write mode; libsndfile needs it
        return b""

    def take(self) -> bytes:
        """The bytes appended since the last call."""
        new = bytes(self.data[self.taken :])
        self.taken = len(self.data)
        return new


class Encoder:
    """Mono float32 samples to ``fmt``, a chunk at a time: ``write`` and ``close`` return the bytes
    ready to send (streamable: a WAV header says its sizes are unknown), ``file`` is the complete
    file once closed (what is stored: the headers patched with the real sizes)."""

    def __init__(self, sample_rate: int, fmt: AudioFormat) -> None:
        self.format = fmt
        self.rate = output_rate(fmt, sample_rate)
        self._resampler = None
        if self.rate != sample_rate:
            import soxr  # only the formats with fixed rates need it

            self._resampler = soxr.ResampleStream(sample_rate, self.rate, 1, dtype="float32")
        self._sink = _Sink()
        options = {"endian": "LITTLE"} if fmt.container == "RAW" else {}
        if fmt.bitrate_mode is not None:
            options |= {"bitrate_mode": fmt.bitrate_mode, "compression_level": fmt.compression_level}
        self._file = sf.SoundFile(
            self._sink, "w", self.rate, 1, format=fmt.container, subtype=fmt.subtype, **options
        )
        self._header_sent = False

    def write(self, samples: np.ndarray) -> bytes:
        samples = np.asarray(samples, dtype=np.float32)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        self._write(samples)
        return self._take()

    def close(self) -> bytes:
        """Flush the encoder; the last bytes to send."""
        if self._resampler is not None:
            self._write(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        tail = self._take()
        self._file.close()
        return tail + self._take()

    @property
    def file(self) -> bytes:
        return bytes(self._sink.data)

    def _write(self, samples: np.ndarray) -> None:
        samples = np.clip(samples, -1.0, 1.0)
        for start in range(0, len(samples), WRITE_BLOCK_FRAMES):
            self._file.write(samples[start : start + WRITE_BLOCK_FRAMES])

    def _take(self) -> bytes:
        if not self.format.streamable and not self._file.closed:
            return b""
        data = self._sink.take()
        if data and not self._header_sent:
            self._header_sent = True
            if self.format.container == "WAV":
                data = _unknown_sizes(data)
            if self.format.placeholder_first:
                data = data[self._sink.first_write :]
        return data


def _unknown_sizes(wav: bytes) -> bytes:
    patched = bytearray(wav)
    for offset in WAV_SIZE_OFFSETS:
        struct.pack_into("<I", patched, offset, UNKNOWN_SIZE)
    return bytes(patched)


def encode(samples: np.ndarray, sample_rate: int, fmt: AudioFormat) -> tuple[bytes, int]:
    """Mono float32 samples to the bytes of ``fmt``; returns the bytes and the encoded sample rate."""
    encoder = Encoder(sample_rate, fmt)
    encoder.write(samples)
    encoder.close()
    return encoder.file, encoder.rate


def silence(seconds: float, sample_rate: int) -> np.ndarray:
    return np.zeros(round(seconds * sample_rate), dtype=np.float32)
