"""Another revision of this repository, checked out beside it for a benchmark's baseline."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from function.local import cpu_model

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def worktree(ref: str, path: Path) -> Iterator[Path]:
    """Git ``ref`` checked out (detached) at ``path`` for the duration; removed again however the
    benchmark ends."""
    git = ["git", "-C", str(REPO), "worktree"]
    subprocess.run([*git, "add", "--detach", str(path), ref], check=True)
    try:
        yield path
    finally:
        subprocess.run([*git, "remove", "--force", str(path)], check=True)


def alternated(
    trial: Callable[[str, Path], dict[str, float]], baseline: str | None, trials: int, digits: int = 3
) -> None:
    """``trial(name, tree)`` for this checkout ("this") and, with ``baseline``, for a worktree of
    that ref ("baseline"), alternated ``trials`` times in one run; prints each one's medians with
    the CPU and the load averages before and after."""
    trees = {"this": REPO}
    with tempfile.TemporaryDirectory(prefix="baseline-") as tmp, contextlib.ExitStack() as stack:
        if baseline:
            trees["baseline"] = stack.enter_context(worktree(baseline, Path(tmp) / "baseline"))
        load = os.getloadavg()
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(trials):
            for name, tree in trees.items():
                runs[name].append(trial(name, tree))
    print(f"{cpu_model()}, {os.cpu_count()} CPUs, load {load} -> {os.getloadavg()}, {trials} trials")
    for name, results in runs.items():
        medians = {key: round(statistics.median(r[key] for r in results), digits) for key in results[0]}
        print(f"{name:9} " + "  ".join(f"{key} {value}" for key, value in medians.items()))


def run_in(tree: Path, script: str, *args: str) -> Any:
    """Run the Python ``script`` in a fresh process on ``tree``'s code (its ``function`` package
    first on the path); the JSON its last line of output prints."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(
    trial: Callable[[str, Path], dict[str, float]],
    doc: str | None,
    argv: Sequence[str] | None,
    digits: int = 3,
) -> None:
    """A benchmark's command line (``--baseline REF``, ``--trials N``), then ``alternated``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="git ref measured alongside, e.g. main")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args(argv)
    alternated(trial, args.baseline, args.trials, digits)
