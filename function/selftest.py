"""Build-time self test: every configured engine speaks one sentence in each language its voices
speak, or the process exits non-zero.

Run by the Dockerfile so that a broken model (or a missing text front end) fails the image build,
not the first request.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import soundfile as sf

from function import audio, pipeline
from function.config import get_settings
from function.engines.base import EngineLoadError, base_language
from function.registry import Engines
from function.schema import SynthesizeRequest

SENTENCES = {
    "en": "This voice was checked when the image was built.",
    "zh": "这个声音在构建镜像时检查过3次。",
    "yue": "呢把聲喺建立映像嗰陣檢查過。",
    "ja": "この声はイメージを作るときに確認されました。",
    "ko": "이 목소리는 이미지를 만들 때 확인되었습니다.",
}


def check(engines: Engines, voice: str, text: str) -> bool:
    """Speak ``text`` with ``voice`` through the request pipeline; print one line; True when audible."""
    settings = engines.settings
    plan = pipeline.plan(
        SynthesizeRequest(text=text, voice=voice),
        engines,
        settings,
        max_chars=settings.max_chars,
        timeout_s=settings.request_timeout_s,
    )
    load_ms = pipeline.load(plan.engine)
    samples = pipeline.synthesize(plan, settings.sentence_pause_ms)
    data, rate = audio.encode(samples, plan.engine.sample_rate, plan.format)
    decoded, decoded_rate = sf.read(io.BytesIO(data), dtype="float32")
    duration = len(decoded) / decoded_rate
    rms = float(np.sqrt(np.mean(np.square(decoded)))) if len(decoded) else 0.0
    print(
        f"selftest: engine={plan.engine.name} model={plan.engine.model_version} voice={voice} "
        f"language={plan.voice.language} load_ms={load_ms or 0:.0f} duration_s={duration:.2f} rms={rms:.4f} "
        f"rate={decoded_rate}"
    )
    return decoded_rate == rate and 0.5 <= duration <= 30 and rms >= 1e-3


def main() -> int:
    engines = Engines(get_settings())
    failures = []
    for name in engines.names:
        try:
            engine = engines.get(name)
        except EngineLoadError as exc:
            failures.append(str(exc))
            continue
        first_voice: dict[str, str] = {}
        for voice in engine.voices():
            first_voice.setdefault(base_language(voice.language), voice.id)
        for language, voice in first_voice.items():
            if language not in SENTENCES:
                failures.append(f"{name}: no self-test sentence for language {language!r}")
            else:
                try:
                    if not check(engines, voice, SENTENCES[language]):
                        failures.append(f"{name} {voice}: the audio is empty, silent or the wrong length")
                except Exception as exc:  # any failure at all must fail the build, with its reason
                    failures.append(f"{name} {voice}: {type(exc).__name__}: {exc}")
    for failure in failures:
        print(f"selftest: FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
