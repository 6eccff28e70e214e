"""What the capacity model samples: each engine's warm service times (with the length of the text
they served) and cold starts, read from ``loadtest.bench``'s bench.json; and, when the async jobs'
benchmark has written it, loadtest/results/jobs-parts.jsonl (one part per line:
``{"engine", "chars", "service_s", "cold", "cpu", "instances"}``) for the event path."""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

JOBS_PARTS = Path(__file__).resolve().parents[1] / "results" / "jobs-parts.jsonl"


@dataclass(frozen=True)
class Profile:
    """One engine on one instance size: what a request costs it."""

    engine: str
    service: tuple[tuple[int, float], ...]  # warm requests: (characters, seconds)
    cold_start_s: tuple[float, ...]  # process start -> first audio response, seconds
    vcpu: int  # the engine's threads when measured = the instance's vCPUs
    memory_gib: float  # what the instance is given (and billed for)

    def sample(self, rng: random.Random) -> tuple[int, float]:
        return rng.choice(self.service)

    def startup_s(self, rng: random.Random) -> float:
        """A new instance's time until it can serve: the measured cold start less one warm
        request (the bench's cold start includes the first synthesis)."""
        warm = statistics.median(s for _, s in self.service)
        return max(0.0, rng.choice(self.cold_start_s) - warm)

    @property
    def mean_service_s(self) -> float:
        return statistics.fmean(s for _, s in self.service)


def from_bench(path: Path, engine: str, memory_gib: float, vcpu: int | None = None) -> Profile:
    """A profile from bench.json: its per-request warm samples (``warm_http_samples``) and cold
    starts (``cold_start_runs_ms``); the vCPUs are the bench's engine threads unless given."""
    bench = json.loads(path.read_text())
    samples = bench.get("warm_http_samples")
    if not samples:
        raise ValueError(f"{path}: no warm_http_samples (rerun python -m loadtest.bench)")
    return Profile(
        engine=engine,
        service=tuple((int(s["chars"]), s["ms"] / 1000) for s in samples),
        cold_start_s=tuple(ms / 1000 for ms in bench["cold_start_runs_ms"]),
        vcpu=vcpu or int(bench.get("engine_threads", 1)),
        memory_gib=memory_gib,
    )


def job_parts(engine: str, path: Path = JOBS_PARTS) -> tuple[tuple[int, float], ...]:
    """The async jobs' warm per-part (characters, seconds) for ``engine``; empty when the file
    does not exist (yet) or holds none for it."""
    if not path.is_file():
        return ()
    parts = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return tuple(
        (int(p["chars"]), float(p["service_s"])) for p in parts if p["engine"] == engine and not p["cold"]
    )
