"""The bare engine, the yardstick of the function's overheads (``loadtest.bench``): the engine's
own work and writing a WAV file, with nothing of the function around it (no server, no settings,
no validation, no routing, no durable store).

    python -m loadtest.bare "Some text." out.wav     # a fresh process: the cold start's yardstick
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from function.engines.base import Engine

# Between sentences, as the function's default TTS_SENTENCE_PAUSE_MS.
PAUSE_S = 0.2


def build() -> Engine:
    """The first engine of TTS_ENGINES with TTS_THREADS threads (default 1), built as cheaply as it
    can be."""
    name = os.environ.get("TTS_ENGINES", "hibari").split(",")[0].strip()
    threads = int(os.environ.get("TTS_THREADS", "1"))
    if name == "hibari":  # needs no settings: hibari alone, as a user of the package would run it
        from function.engines.hibari import HibariEngine

        return HibariEngine(threads=threads)
    from function.config import Settings
    from function.registry import build_engine

    return build_engine(name, Settings(threads=threads))  # type: ignore[arg-type]


def speaker(engine: Engine) -> Callable[[str, Path], None]:
    """``speak(text, path)``: the engine's default voice speaks ``text`` into a WAV file at ``path``."""
    engine.load()
    voice = engine.default_voice

    def speak(text: str, path: Path) -> None:
        samples = np.concatenate(list(engine.speak(text, voice, 1.0, PAUSE_S)))
        sf.write(path, samples, engine.sample_rate, subtype="PCM_16")

    return speak


if __name__ == "__main__":
    speaker(build())(sys.argv[1], Path(sys.argv[2]))
