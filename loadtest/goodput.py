"""The deadlines that goodput is counted against: ``factor`` × each kind of request's unloaded
latency, measured at the start of the run with one request at a time, never below a floor; or one
fixed deadline for every kind (``--deadline-ms``, e.g. a 30 s gateway timeout for a slow engine).

A request counts towards goodput when it is answered successfully within the deadline of its kind;
refusals (429/503), errors and late answers are all failures."""

from __future__ import annotations

import json
import random
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from loadtest.traffic import KINDS


def timed_request(url: str, path: str, body: dict[str, Any], headers: Mapping[str, str]) -> float:
    """Milliseconds for one request to be answered with a 200 and its body read."""
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def unloaded_ms(
    url: str, kinds: Iterable[str], samples: int, headers: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Median latency of each kind of request, sent one at a time to an otherwise idle server."""
    rng = random.Random()
    found: dict[str, float] = {}
    for name in kinds:
        kind = KINDS[name]
        for body in kind.prime:
            timed_request(url, kind.path, body, headers or {})
        found[name] = round(
            statistics.median(
                timed_request(url, kind.path, kind.make(rng), headers or {}) for _ in range(samples)
            ),
            1,
        )
    return found


def deadlines(
    kinds: Iterable[str],
    unloaded: Mapping[str, Mapping[str, float]],
    factor: float,
    floor_ms: float,
    fixed_ms: float | None = None,
) -> dict[str, float]:
    """One deadline per kind, the same for every architecture: ``factor`` × the fastest
    architecture's unloaded median of that kind (``unloaded[architecture][kind]``), at least
    ``floor_ms``; or ``fixed_ms`` for every kind when given."""
    if fixed_ms is not None:
        return dict.fromkeys(kinds, fixed_ms)
    return {
        name: round(max(floor_ms, factor * min(f[name] for f in unloaded.values() if name in f)), 1)
        for name in kinds
    }
