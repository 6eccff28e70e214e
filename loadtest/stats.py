"""Figures from Locust's per-request log: goodput under a deadline (the headline), latency of
successful requests, errors, CPU."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from loadtest.traffic import ISOLATION_TRAFFIC


@dataclass
class Step:
    architecture: str
    scenario: str  # "mixed" or "isolation"
    traffic: str  # which requests the row counts: "all"; in isolation "short" or "long"
    users: int
    requests: int  # attempts: a refused request retried counts twice
    good: int  # answered successfully within its kind's deadline
    goodput_share: float  # good / requests: refusals, errors and late answers are failures
    goodput_rps: float  # good / window_s
    ok: int
    late: int  # ok but past the deadline
    errors: int
    refused: int  # 429/503: turned away by a full queue, not failed work
    error_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    qps: float  # successful responses per second
    window_s: float
    cpu_s: float | None  # server processes only
    cpu_util: float | None  # cpu_s / window_s: 2.0 means two cores busy

    def row(self) -> dict[str, object]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN when there is nothing to rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(
    architecture: str,
    users: int,
    log: Path,
    cpu_s: float | None,
    deadlines: Mapping[str, float] | None = None,
    scenario: str = "mixed",
) -> list[Step]:
    """One row for all requests ("mixed"), or one for the short and one for the long requests
    ("isolation"); every row's rates over the whole step's window, its CPU the whole step's.
    Without deadlines every successful request counts as good."""
    deadlines = deadlines or {}
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if records:
        start = min(r["t"] - r["ms"] / 1000 for r in records)
        window = max(r["t"] for r in records) - start
    else:
        window = 0.0
    window = max(window, 1e-3)
    traffic = ISOLATION_TRAFFIC if scenario == "isolation" else {"all": None}
    fallback = max(deadlines.values(), default=math.inf)
    steps: list[Step] = []
    for label, names in traffic.items():
        chosen = [r for r in records if names is None or r["name"] in names]
        ok = [r for r in chosen if r["ok"]]
        good = sum(1 for r in ok if r["ms"] <= deadlines.get(r["name"], fallback))
        ms = [r["ms"] for r in ok]
        errors = len(chosen) - len(ok)
        steps.append(
            Step(
                architecture=architecture,
                scenario=scenario,
                traffic=label,
                users=users,
                requests=len(chosen),
                good=good,
                goodput_share=round(good / len(chosen), 4) if chosen else math.nan,
                goodput_rps=round(good / window, 2),
                ok=len(ok),
                late=len(ok) - good,
                errors=errors,
                refused=sum(1 for r in chosen if not r["ok"] and r["status"] in (429, 503)),
                error_rate=round(errors / len(chosen), 4) if chosen else math.nan,
                p50_ms=round(percentile(ms, 50), 1),
                p95_ms=round(percentile(ms, 95), 1),
                p99_ms=round(percentile(ms, 99), 1),
                qps=round(len(ok) / window, 2),
                window_s=round(window, 2),
                cpu_s=None if cpu_s is None else round(cpu_s, 2),
                cpu_util=None if cpu_s is None else round(cpu_s / window, 2),
            )
        )
    return steps


def ratios(steps: list[Step], reference: str, other: str) -> list[dict[str, object]]:
    """other ÷ reference for each scenario, traffic and user count (latency ratios > 1 and goodput
    or qps ratios < 1 favour the reference)."""
    by_key = {(s.architecture, s.scenario, s.traffic, s.users): s for s in steps}
    out: list[dict[str, object]] = []
    for scenario, traffic, users in dict.fromkeys((s.scenario, s.traffic, s.users) for s in steps):
        ref = by_key.get((reference, scenario, traffic, users))
        oth = by_key.get((other, scenario, traffic, users))
        if ref is None or oth is None:
            continue
        row: dict[str, object] = {"scenario": scenario, "traffic": traffic, "users": users}
        for name in ("goodput_rps", "goodput_share", "p50_ms", "p95_ms", "p99_ms", "qps"):
            a, b = getattr(ref, name), getattr(oth, name)
            row[f"{name}_{other}_over_{reference}"] = round(b / a, 2) if a and not math.isnan(a) else None
        out.append(row)
    return out


def median_steps(rounds: list[Step]) -> list[Step]:
    """One step per architecture, scenario, traffic and user count: every figure the median of its
    rounds (so a row's figures may come from different rounds)."""
    groups: dict[tuple[str, str, str, int], list[Step]] = {}
    for step in rounds:
        groups.setdefault((step.architecture, step.scenario, step.traffic, step.users), []).append(step)
    merged: list[Step] = []
    for (arch, scenario, traffic, users), steps in groups.items():
        values: dict[str, object] = {
            "architecture": arch,
            "scenario": scenario,
            "traffic": traffic,
            "users": users,
        }
        for f in fields(Step):
            if f.name not in values:
                column = [getattr(s, f.name) for s in steps]
                values[f.name] = None if None in column else statistics.median(column)
        merged.append(Step(**values))  # type: ignore[arg-type]
    return merged
