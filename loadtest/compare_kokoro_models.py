"""Kokoro's static models against each other and against the int8 export (not a test).

    .venv/bin/python loadtest/compare_kokoro_models.py --int8-from models/kokoro-82m \
        --static main=DIR_A --static fused=DIR_B [--rounds 3] [--quality] [--asr] [--out FILE.json]

``--int8-from`` names a model dir whose int8 export (``static=False``: the timed model where the
build kept one, else the export itself) is the baseline; each ``--static LABEL=DIR`` adds that
dir's ``model.static.onnx``. All run in one process, alternated round by round (the order reversed
every other round):

* speed: wall time of a Mandarin paragraph and an English sentence (bench_kokoro's texts);
* quality against the int8 export: per long or loud sentence the log-mel difference, each
  model's peak and clipped samples (bench_kokoro's sentences and measures);
* with ``--asr``: whisper-base's character and syllable error rates on loadtest/data/zh_everyday.tsv
  (every sentence, the default Mandarin voice), per model as one corpus (loadtest/zh_cer.py's
  scores, asked of the engines directly rather than through a server).

Issue 25's run (int8 / 8-bit static / 7-bit static, ``loadtest/results/kokoro-7bit/``) was
``--int8-from OLD --static static8=OLD --static static7=NEW`` with OLD a dir built before 7-bit
weights.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from function.engines.kokoro import KokoroEngine
from function.local import cpu_model
from loadtest.bench_kokoro import (
    ENGLISH,
    ENGLISH_VOICE,
    MANDARIN,
    MANDARIN_VOICE,
    QUALITY_EN,
    QUALITY_VOICE_EN,
    QUALITY_VOICES_ZH,
    QUALITY_ZH,
    _speak,
    log_mel,
    untrimmed,
)

BASELINE = "int8"


def engines(int8_from: Path, static: list[str]) -> dict[str, KokoroEngine]:
    models = {BASELINE: KokoroEngine(int8_from, 1, static=False)}
    for spec in static:
        label, _, directory = spec.partition("=")
        if not directory or label in models:
            raise SystemExit(f"--static wants a new LABEL=DIR, got {spec!r}")
        models[label] = KokoroEngine(Path(directory), 1, static=True)
    return models


def speed(models: dict[str, KokoroEngine], rounds: int) -> dict[str, Any]:
    """Median wall time per model, alternated: round r runs every model once (round 0 warms up)."""
    report: dict[str, Any] = {}
    for label, text, voice in (("mandarin", MANDARIN, MANDARIN_VOICE), ("english", ENGLISH, ENGLISH_VOICE)):
        times: dict[str, list[float]] = {name: [] for name in models}
        for round_ in range(rounds + 1):
            order = list(models.items())
            for name, engine in order if round_ % 2 else reversed(order):
                started = time.perf_counter()
                _speak(engine, text, voice)
                if round_:
                    times[name].append(time.perf_counter() - started)
        report[label] = {name: round(statistics.median(values), 3) for name, values in times.items()}
    return report


def quality(models: dict[str, KokoroEngine]) -> dict[str, Any]:
    """Each model's output against the int8 export's on the long and loud sentences."""
    texts = [(t, v) for t in QUALITY_ZH for v in QUALITY_VOICES_ZH]
    texts += [(t, QUALITY_VOICE_EN) for t in QUALITY_EN]
    rows = []
    for text, voice in texts:
        out = {name: untrimmed(engine, text, voice) for name, engine in models.items()}
        base = out[BASELINE]
        row: dict[str, Any] = {"text": text[:12], "voice": voice}
        for name, audio in out.items():
            n = min(len(base), len(audio))
            if name != BASELINE:
                row[f"{name}_mel_db"] = round(float(np.abs(log_mel(audio[:n]) - log_mel(base[:n])).mean()), 2)
            row[f"{name}_peak"] = round(float(np.abs(audio).max()), 3)
            row[f"{name}_clipped"] = int((np.abs(audio) >= 1).sum())
        rows.append(row)
    means = {
        f"{name}_mean_mel_db": round(statistics.mean(r[f"{name}_mel_db"] for r in rows), 2)
        for name in models
        if name != BASELINE
    }
    return {**means, "max_peak": {n: max(r[f"{n}_peak"] for r in rows) for n in models}, "sentences": rows}


def error_rates(models: dict[str, KokoroEngine]) -> dict[str, Any]:
    """whisper-base's CER and syllable error rate on the everyday set, per model, as one corpus."""
    from loadtest import asr
    from loadtest.zh_cer import corpus_cer, load_set

    cases = load_set()
    heard: dict[str, list[str]] = {name: [] for name in models}
    for _, text in cases:
        for name, engine in models.items():  # alternated, sentence by sentence
            audio = _speak(engine, text, MANDARIN_VOICE)
            heard[name].append(asr.transcribe(audio, engine.sample_rate, "zh"))
    return {
        name: {
            "cer": corpus_cer(cases, transcripts, "all"),
            "syllables": corpus_cer(cases, transcripts, "all", asr.syllable_error_rate),
        }
        for name, transcripts in heard.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--int8-from", type=Path, required=True, help="model dir of the int8 baseline")
    parser.add_argument("--static", action="append", default=[], help="LABEL=DIR of a static model")
    parser.add_argument("--rounds", type=int, default=3, help="speed rounds; 0 skips the speed")
    parser.add_argument("--quality", action="store_true", help="log-mel difference, peaks, clipping")
    parser.add_argument("--asr", action="store_true", help="whisper-base CER on the everyday Chinese set")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {"processor": cpu_model(), "cpus": os.cpu_count(), "load_start": os.getloadavg()}
    models = engines(args.int8_from, args.static)
    for engine in models.values():
        engine.load()
    if args.rounds:
        report["wall_s"] = speed(models, args.rounds)
    if args.quality:
        report["quality"] = quality(models)
    if args.asr:
        report["error_rates"] = error_rates(models)
    report["load_end"] = os.getloadavg()
    summary = {k: v for k, v in report.items() if k != "quality"}
    if args.quality:
        summary["quality"] = {k: v for k, v in report["quality"].items() if k != "sentences"}
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
