"""Figures from Locust's per-request log: latency of successful requests, goodput, errors, CPU."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass
class Step:
    architecture: str
    users: int
    requests: int
    ok: int
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


def summarize(architecture: str, users: int, log: Path, cpu_s: float | None) -> Step:
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    ok = [r["ms"] for r in records if r["ok"]]
    refused = sum(1 for r in records if not r["ok"] and r["status"] in (429, 503))
    if records:
        start = min(r["t"] - r["ms"] / 1000 for r in records)
        window = max(r["t"] for r in records) - start
    else:
        window = 0.0
    window = max(window, 1e-3)
    errors = len(records) - len(ok)
    return Step(
        architecture=architecture,
        users=users,
        requests=len(records),
        ok=len(ok),
        errors=errors,
        refused=refused,
        error_rate=round(errors / len(records), 4) if records else math.nan,
        p50_ms=round(percentile(ok, 50), 1),
        p95_ms=round(percentile(ok, 95), 1),
        p99_ms=round(percentile(ok, 99), 1),
        qps=round(len(ok) / window, 2),
        window_s=round(window, 2),
        cpu_s=None if cpu_s is None else round(cpu_s, 2),
        cpu_util=None if cpu_s is None else round(cpu_s / window, 2),
    )


def ratios(steps: list[Step], reference: str, other: str) -> list[dict[str, object]]:
    """other ÷ reference at each user count (latency ratios > 1 and qps ratios < 1 favour the reference)."""
    by_key = {(s.architecture, s.users): s for s in steps}
    out: list[dict[str, object]] = []
    for users in sorted({s.users for s in steps}):
        ref, oth = by_key.get((reference, users)), by_key.get((other, users))
        if ref is None or oth is None:
            continue
        row: dict[str, object] = {"users": users}
        for name in ("p50_ms", "p95_ms", "p99_ms", "qps"):
            a, b = getattr(ref, name), getattr(oth, name)
            row[f"{name}_{other}_over_{reference}"] = round(b / a, 2) if a and not math.isnan(a) else None
        out.append(row)
    return out


def median_steps(rounds: list[Step]) -> list[Step]:
    """One step per architecture and user count: every figure the median of its rounds."""
    groups: dict[tuple[str, int], list[Step]] = {}
    for step in rounds:
        groups.setdefault((step.architecture, step.users), []).append(step)
    merged: list[Step] = []
    for (arch, users), steps in groups.items():
        values: dict[str, object] = {"architecture": arch, "users": users}
        for f in fields(Step):
            if f.name not in values:
                column = [getattr(s, f.name) for s in steps]
                values[f.name] = None if None in column else statistics.median(column)
        merged.append(Step(**values))  # type: ignore[arg-type]
    return merged
