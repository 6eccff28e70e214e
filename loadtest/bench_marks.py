"""What speech marks cost, and that the plain path (no marks asked for) costs what it did.

Each trial is a fresh process per tree that loads hibari and Kokoro and times
``pipeline.synthesize`` (the engine's pieces, pauses and samples: the code the marks touch) for an
English and a Mandarin paragraph, after one warm-up; in this tree also with a ``Recorder`` and the
marks object made from it (``marks=["sentence", "word"]``). With ``--baseline REF`` the same plain
runs for git ``REF``'s code (a worktree of it), trials alternated with this checkout's, each tree
on its own Kokoro model dir (``--baseline-kokoro-dir``: a dir built by REF's assets, whose model
has no durations output).

What could make the figures wrong: other work on the machine (the load average is printed; run
it under ``flock /tmp/bench.lock``); the medians of a few repetitions on a shared 2 vCPU machine
move by several per cent between runs, so only a difference larger than the spread between
trials of the same tree means anything.

    flock /tmp/bench.lock python -m loadtest.bench_marks --baseline main \\
        --baseline-kokoro-dir /path/to/main/models/kokoro-82m --trials 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from function.local import cpu_model
from loadtest.revisions import REPO, run_in, worktree

TRIAL = """
import json, sys, time
from pathlib import Path
from function import pipeline
from function.config import Settings
from function.registry import Engines
from function.schema import SynthesizeRequest
try:
    from function import marks
except ImportError:
    marks = None
settings = Settings(engines=("hibari", "kokoro"), kokoro_dir=Path(sys.argv[1]))
engines = Engines(settings)
EN = "The museum will close early tomorrow. Please bring your tickets. We open at nine."
ZH = "博物馆明天会提前关门。请带好你的门票。我们九点开门。"
CASES = {"hibari_en": (EN, "heart"), "kokoro_en": (EN, "af_heart"), "kokoro_zh": (ZH, "zf_xiaobei")}
REPS = int(sys.argv[2])
out = {}
for name, (text, voice) in CASES.items():
    request = SynthesizeRequest(text=text, voice=voice)
    plan = pipeline.plan(request, engines, settings, max_chars=5000, timeout_s=600)
    pipeline.prepare(plan.engine, {})
    pipeline.synthesize(plan, 200)  # warm-up: lazy G2Ps, onnxruntime's arena
    times = []
    for _ in range(REPS):
        t = time.perf_counter(); pipeline.synthesize(plan, 200); times.append(time.perf_counter() - t)
    out[f"{name}_plain_ms"] = sorted(times)[len(times) // 2] * 1000
    if marks is not None:
        times = []
        for _ in range(REPS):
            t = time.perf_counter()
            recorder = marks.Recorder()
            pipeline.synthesize(plan, 200, recorder)
            marks.from_recorder(recorder, text, plan.engine)
            times.append(time.perf_counter() - t)
        out[f"{name}_marks_ms"] = sorted(times)[len(times) // 2] * 1000
print(json.dumps(out))
"""


def trial(tree: Path, kokoro_dir: Path, reps: int) -> dict[str, float]:
    return run_in(tree, TRIAL, str(kokoro_dir), str(reps))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", help="git ref measured alongside, e.g. main")
    parser.add_argument(
        "--baseline-kokoro-dir", type=Path, help="the baseline's model dir (default: this one's)"
    )
    parser.add_argument("--kokoro-dir", type=Path, default=REPO / "models" / "kokoro-82m")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per trial (the median)")
    args = parser.parse_args(argv)
    trees = {"this": (REPO, args.kokoro_dir)}
    with tempfile.TemporaryDirectory(prefix="bench-marks-") as tmp, contextlib.ExitStack() as stack:
        if args.baseline:
            tree = stack.enter_context(worktree(args.baseline, Path(tmp) / "baseline"))
            trees["baseline"] = (tree, args.baseline_kokoro_dir or args.kokoro_dir)
        load = os.getloadavg()
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(args.trials):
            for name, (tree, kokoro_dir) in trees.items():  # alternated
                runs[name].append(trial(tree, kokoro_dir, args.reps))
    print(f"{cpu_model()}, {os.cpu_count()} CPUs, load {load} -> {os.getloadavg()}, {args.trials} trials")
    for name, results in runs.items():
        for key in results[0]:
            values = [round(r[key], 1) for r in results]
            print(f"{name:9} {key:22} median {statistics.median(values):8.1f} ms  trials {values}")


if __name__ == "__main__":
    main()
