"""Build-time self test: load the configured engine and speak one sentence, or exit non-zero.

Run by the Dockerfile so that a broken model fails the image build, not the first request.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import soundfile as sf

from function import audio, runtime
from function.config import get_settings
from function.pipeline import plan, synthesize
from function.schema import SynthesizeRequest

SENTENCE = "This voice was checked when the image was built."


def main() -> int:
    settings = get_settings()
    engine, load_ms = runtime.loaded_engine()
    job = plan(
        SynthesizeRequest(text=SENTENCE),
        engine,
        settings,
        max_chars=settings.max_chars,
        timeout_s=settings.request_timeout_s,
    )
    samples = synthesize(engine, job, settings.sentence_pause_ms)
    data, rate = audio.encode(samples, engine.sample_rate, job.format)
    decoded, decoded_rate = sf.read(io.BytesIO(data), dtype="float32")
    duration = len(decoded) / decoded_rate
    rms = float(np.sqrt(np.mean(np.square(decoded)))) if len(decoded) else 0.0
    print(
        f"selftest: engine={engine.name} model={engine.model_version} voice={job.voice.id} "
        f"load_ms={load_ms or 0:.0f} duration_s={duration:.2f} rms={rms:.4f} rate={decoded_rate}"
    )
    if decoded_rate != rate or not 0.5 <= duration <= 30 or rms < 1e-3:
        print("selftest: FAILED: the audio is empty, silent or the wrong length", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
