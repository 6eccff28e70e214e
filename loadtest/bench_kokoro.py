"""Kokoro engine on CPU: cold start, real-time factors, onnxruntime session options (not a test).

    .venv/bin/python loadtest/bench_kokoro.py [--model-dir models/kokoro-82m] [--threads 1]
        [--repeats 5] [--cold 3] [--options-rounds 3] [--out FILE.json]

Prints (and with ``--out`` writes as JSON):

* cold start, in fresh processes: process start -> first Chinese audio (the spawn is timed by this
  process, the phases by the child: imports, construct, ``load()``, first synthesis) and the
  child's peak RSS. Median of ``--cold`` processes.
* real-time factor (synthesis wall time / audio seconds) on ``--threads`` intra-op threads for a
  ~40-character Mandarin paragraph and an English sentence of similar length: median of
  ``--repeats`` after a warm-up, split into the text front end (G2P) and onnxruntime.
* onnxruntime session options against the default, alternated round by round in one process so
  a shared machine's load hits them alike: no memory arena, ``ORT_ENABLE_EXTENDED`` and
  ``ORT_ENABLE_BASIC`` graph optimisation, ``ORT_PARALLEL`` execution mode.

Imports only the ``function`` package (and onnxruntime, for the option variants).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from function.engines.kokoro import KokoroEngine  # noqa: E402
from function.local import cpu_model  # noqa: E402

MANDARIN = "人工智能正在改变我们的生活方式。从智能手机到自动驾驶汽车，新技术让很多事情变得更加方便。"
ENGLISH = "Artificial intelligence is changing the way we live, from phones to self-driving cars."
COLD_TEXT = "你好，欢迎使用语音合成服务。"
MANDARIN_VOICE = "zf_xiaobei"
ENGLISH_VOICE = "af_heart"

# A fresh process: imports, construct, load, one Chinese sentence. time.time() is shared with the
# parent, which took it just before spawning.
_COLD_CHILD = """
import json, resource, sys, time
started = time.time()
from pathlib import Path
from function.engines.kokoro import KokoroEngine
imported = time.time()
engine = KokoroEngine(Path(sys.argv[1]), threads=int(sys.argv[2]))
voices = engine.voices()
constructed = time.time()
engine.load()
loaded = time.time()
audio = [engine.synthesize(p, sys.argv[3], 1.0) for p in engine.pieces(sys.argv[4])]
done = time.time()
print(json.dumps({
    "interpreter_start": started, "imports_s": imported - started, "construct_s": constructed - imported,
    "load_s": loaded - constructed, "first_synthesis_s": done - loaded, "audio_ready": done,
    "audio_s": sum(len(a) for a in audio) / engine.sample_rate,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def cold_start(model_dir: Path, threads: int, runs: int) -> dict[str, Any]:
    rows = []
    for _ in range(runs):
        spawned = time.time()
        done = subprocess.run(
            [sys.executable, "-c", _COLD_CHILD, str(model_dir), str(threads), MANDARIN_VOICE, COLD_TEXT],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["process_start_to_audio_s"] = row["audio_ready"] - spawned
        row["interpreter_startup_s"] = row["interpreter_start"] - spawned
        rows.append(row)
    keys = ("process_start_to_audio_s", "interpreter_startup_s", "imports_s", "construct_s", "load_s")
    keys += ("first_synthesis_s", "audio_s", "peak_rss_mb")
    return {key: round(statistics.median(r[key] for r in rows), 3) for key in keys}


def realtime_factor(engine: KokoroEngine, text: str, voice: str, repeats: int) -> dict[str, float]:
    """Median wall time of the front end and of onnxruntime for ``text``, after one warm-up."""
    engine.synthesize(engine.pieces(text)[0], voice, 1.0)
    g2p, onnx, audio_s = [], [], 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        pieces = engine.pieces(text)
        for piece in pieces:
            engine.phonemes(piece, voice)
        front = time.perf_counter() - started
        started = time.perf_counter()
        audio = [engine.synthesize(piece, voice, 1.0) for piece in pieces]
        total = time.perf_counter() - started  # includes the front end again (~ms), measured above
        audio_s = sum(len(a) for a in audio) / engine.sample_rate
        g2p.append(front)
        onnx.append(total - front)
    wall = statistics.median(g + o for g, o in zip(g2p, onnx, strict=True))
    return {
        "chars": len(text),
        "audio_s": round(audio_s, 3),
        "g2p_ms": round(statistics.median(g2p) * 1000, 2),
        "onnx_s": round(statistics.median(onnx), 3),
        "rtf": round(wall / audio_s, 3),
    }


def _variant(name: str, change: Any) -> type[KokoroEngine]:
    class Variant(KokoroEngine):
        def _session_options(self, ort: Any) -> Any:
            options = super()._session_options(ort)
            change(ort, options)
            return options

    Variant.__name__ = name
    return Variant


VARIANTS: dict[str, Any] = {
    "default": lambda ort, o: None,
    "no_arena": lambda ort, o: setattr(o, "enable_cpu_mem_arena", False),
    "opt_extended": lambda ort, o: setattr(
        o, "graph_optimization_level", ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ),
    "opt_basic": lambda ort, o: setattr(
        o, "graph_optimization_level", ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    ),
    "parallel_mode": lambda ort, o: setattr(o, "execution_mode", ort.ExecutionMode.ORT_PARALLEL),
}


def session_options(model_dir: Path, threads: int, rounds: int) -> dict[str, dict[str, float]]:
    """Each variant's Mandarin onnxruntime time, alternated: round r runs every variant once."""
    engines = {}
    for name, change in VARIANTS.items():
        engine = _variant(name, change)(model_dir, threads=threads)
        started = time.perf_counter()
        engine.load()
        engines[name] = (engine, time.perf_counter() - started)
    pieces = engines["default"][0].pieces(MANDARIN)
    times: dict[str, list[float]] = {name: [] for name in engines}
    audio_s = 0.0
    for round_ in range(rounds + 1):  # round 0 warms every session up
        for name, (engine, _) in engines.items():
            started = time.perf_counter()
            audio = [engine.synthesize(piece, MANDARIN_VOICE, 1.0) for piece in pieces]
            if round_:
                times[name].append(time.perf_counter() - started)
            audio_s = sum(len(a) for a in audio) / engine.sample_rate
    return {
        name: {
            "session_load_s": round(engines[name][1], 3),
            "wall_s": round(statistics.median(values), 3),
            "rtf": round(statistics.median(values) / audio_s, 3),
        }
        for name, values in times.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models" / "kokoro-82m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold", type=int, default=3, help="fresh processes for the cold start")
    parser.add_argument("--options-rounds", type=int, default=3, help="0 skips the session-option comparison")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    report: dict[str, Any] = {
        "cpu": f"{cpu_model()}, {os.cpu_count()} vCPU",
        "load_average_before": os.getloadavg(),
        "threads": args.threads,
    }
    print(f"CPU: {report['cpu']}; load average {report['load_average_before']}; {args.threads} thread(s)")

    report["cold_start"] = cold_start(args.model_dir, args.threads, args.cold)
    print(f"cold start (median of {args.cold} processes): {json.dumps(report['cold_start'])}")

    engine = KokoroEngine(args.model_dir, threads=args.threads)
    started = time.perf_counter()
    engine.load()
    report["load_s"] = round(time.perf_counter() - started, 3)
    print(f"load() in a warm process: {report['load_s']} s")

    report["mandarin"] = realtime_factor(engine, MANDARIN, MANDARIN_VOICE, args.repeats)
    print(f"Mandarin ({MANDARIN_VOICE}): {json.dumps(report['mandarin'])}")
    report["english"] = realtime_factor(engine, ENGLISH, ENGLISH_VOICE, args.repeats)
    print(f"English ({ENGLISH_VOICE}): {json.dumps(report['english'])}")
    del engine

    if args.options_rounds:
        report["session_options"] = session_options(args.model_dir, args.threads, args.options_rounds)
        for name, row in report["session_options"].items():
            print(f"session options {name:>13}: {json.dumps(row)}")
    report["load_average_after"] = os.getloadavg()
    print(f"load average after: {report['load_average_after']}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
