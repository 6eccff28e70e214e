"""One simulated run: a service, a load (closed users, open arrivals, or Pub/Sub events), a
deadline; the figures loadtest.run reports for a real one (goodput, latency percentiles), plus
instances over time and cost."""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import simpy

from loadtest.capacity.platform import (
    CloudRunService,
    Outcome,
    Redelivery,
    Sampler,
    Service,
    closed_users,
    events,
    open_requests,
    poisson_arrivals,
)
from loadtest.capacity.prices import cost
from loadtest.stats import percentile


@dataclass(frozen=True)
class Users:
    """Closed loop, as Locust: ``users`` each wait for the answer, then pause."""

    users: int
    think_max_s: float = 0.5
    retry_pause_s: float = 1.0


@dataclass(frozen=True)
class Arrivals:
    """Open loop: Poisson arrivals, optionally with a burst (start_s, length_s, factor)."""

    rate_per_s: float
    burst: tuple[float, float, float] | None = None
    as_events: bool = False  # Pub/Sub push with redelivery instead of HTTP requests
    redelivery: Redelivery = field(default_factory=Redelivery)


@dataclass
class Result:
    requests: int  # attempts (HTTP) or events, arrived after the warm-up
    good: int  # answered successfully within the deadline
    goodput_share: float
    goodput_rps: float
    ok: int
    refused: int  # HTTP: 429 after the pending timeout or a full queue; events: dead-lettered
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    qps: float
    instances_mean: float
    instances_max: int
    cold_starts: int
    dollars_per_hour: float
    dollars_per_million_chars: float | None
    timeline: list[tuple[float, int, int]]  # (t, instances, busy) every second

    def row(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k != "timeline"}


def simulate(
    sample: Sampler,
    startup_s: Callable[[random.Random], float],
    service: Service,
    load: Users | Arrivals,
    duration_s: float,
    deadline_s: float,
    vcpu: int = 1,
    memory_gib: float = 1.0,
    warmup_s: float = 0.0,
    seed: int = 0,
) -> Result:
    """Run ``duration_s`` simulated seconds; figures count what arrived after ``warmup_s``
    (requests still in flight at the end are left out), cost the whole run."""
    rng = random.Random(seed)
    env = simpy.Environment()
    target = CloudRunService(env, service, sample, startup_s, rng)
    outcomes: list[Outcome] = []
    if isinstance(load, Users):
        closed_users(env, target, load.users, load.think_max_s, load.retry_pause_s, outcomes, rng)
    else:
        arrivals = poisson_arrivals(load.rate_per_s, duration_s, rng, load.burst)
        if load.as_events:
            events(env, target, arrivals, load.redelivery, outcomes)
        else:
            open_requests(env, target, arrivals, outcomes)
    env.run(until=duration_s)
    target.settle()
    counted = [o for o in outcomes if o.arrived >= warmup_s]
    window = duration_s - warmup_s
    ok = [o for o in counted if o.ok]
    good = [o for o in ok if o.latency_s <= deadline_s]
    latencies_ms = [o.latency_s * 1000 for o in ok]
    usage = target.usage
    chars = sum(o.chars for o in ok)
    price = cost(usage.billed_instance_s, usage.requests, vcpu, memory_gib, duration_s, chars)
    per_million = price.per_million_chars
    counts = [n for t, n, _ in usage.timeline if t >= warmup_s] or [0]
    return Result(
        requests=len(counted),
        good=len(good),
        goodput_share=round(len(good) / len(counted), 4) if counted else float("nan"),
        goodput_rps=round(len(good) / window, 3),
        ok=len(ok),
        refused=len(counted) - len(ok),
        p50_ms=round(percentile(latencies_ms, 50), 1),
        p95_ms=round(percentile(latencies_ms, 95), 1),
        p99_ms=round(percentile(latencies_ms, 99), 1),
        mean_ms=round(statistics.fmean(latencies_ms), 1) if latencies_ms else float("nan"),
        qps=round(len(ok) / window, 3),
        instances_mean=round(statistics.fmean(counts), 2),
        instances_max=max(counts),
        cold_starts=usage.cold_starts,
        dollars_per_hour=round(price.dollars_per_hour, 6),
        dollars_per_million_chars=None if per_million is None else round(per_million, 4),
        timeline=usage.timeline,
    )
