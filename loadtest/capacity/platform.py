"""The simulation: a Cloud Run service with concurrency 1 (one request per instance), built on
SimPy's processes and stores.

* An arriving request takes an idle instance if there is one; else it waits in the pending queue
  and, while the instances (running and starting) are fewer than ``max_instances`` and fewer are
  starting than wait, a new instance starts (a cold start sampled from the bench). Assumption:
  the scale-out is immediate on demand; Cloud Run's autoscaler may be slower.
* A request that waits longer than ``pending_timeout_s`` fails (Cloud Run: 429 after at least 10 s,
  or the mean startup time when longer — "About instance autoscaling"); ``max_pending`` bounds the
  queue (the local HAProxy fleet's ``maxqueue``; Cloud Run: no bound).
* An instance idle for ``idle_timeout_s`` (Cloud Run: 15 min) goes away, down to ``min_instances``
  (kept warm from the start).
* ``host_cpus``: the local fleet's instances share this many cores (each request needs one core
  while it runs); None on Cloud Run, where each instance has its own vCPUs.
* Events (Pub/Sub push): a refused delivery is redelivered after an exponential backoff between
  the subscription's minimum and maximum (terraform/pubsub.tf: 10 s and 600 s), up to
  ``max_attempts``, then dead-lettered. Pub/Sub's exact backoff curve and its push flow control are
  not published in full: doubling from the minimum is an assumption.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field

import simpy

Sampler = Callable[[random.Random], tuple[int, float]]  # -> (characters, service seconds)


@dataclass(frozen=True)
class Service:
    max_instances: int
    min_instances: int = 0
    pending_timeout_s: float = 10.0
    max_pending: int | None = None
    idle_timeout_s: float = 900.0
    host_cpus: int | None = None
    billing_step_s: float = 0.1  # Cloud Run rounds each billable period up to 100 ms


@dataclass
class Outcome:
    arrived: float
    finished: float
    chars: int
    ok: bool
    cold: bool = False  # its arrival started a new instance (it may still get another one first)
    attempts: int = 1

    @property
    def latency_s(self) -> float:
        return self.finished - self.arrived


@dataclass
class _Instance:
    last_used: float
    busy_since: float | None = None  # start of the current billable period (back-to-back requests)


@dataclass
class Usage:
    """What the platform bills: instance-seconds while serving or starting, and requests."""

    billed_instance_s: float = 0.0
    requests: int = 0
    cold_starts: int = 0
    timeline: list[tuple[float, int, int]] = field(default_factory=list)  # (t, instances, busy)


class CloudRunService:
    def __init__(
        self,
        env: simpy.Environment,
        service: Service,
        sample: Sampler,
        startup_s: Callable[[random.Random], float],
        rng: random.Random,
    ) -> None:
        self.env, self.config, self.sample, self.startup_s, self.rng = env, service, sample, startup_s, rng
        self.idle = simpy.Store(env)
        self.instances = service.min_instances
        self.starting = 0
        self.cores = simpy.Resource(env, service.host_cpus) if service.host_cpus else None
        self.usage = Usage()
        self.in_period: dict[int, _Instance] = {}  # in a billable period: settled at the end
        for _ in range(service.min_instances):
            self.idle.put(_Instance(last_used=0.0))
        env.process(self._watch())

    def handle(self) -> Generator[simpy.Event, object, Outcome]:
        """One request, from arrival to response or refusal."""
        env, config = self.env, self.config
        arrived = env.now
        self.usage.requests += 1
        waiting = len(self.idle.get_queue) + 1
        if config.max_pending is not None and not self.idle.items and waiting > config.max_pending:
            return Outcome(arrived, env.now, 0, ok=False)
        cold = False
        if waiting > len(self.idle.items) + self.starting and self.instances < config.max_instances:
            env.process(self._start_instance())
            cold = True
        get = self.idle.get()
        yield get | env.timeout(config.pending_timeout_s)
        if not get.triggered:
            get.cancel()
            return Outcome(arrived, env.now, 0, ok=False, cold=cold)
        instance: _Instance = get.value  # type: ignore[assignment]
        if instance.busy_since is None:
            instance.busy_since = env.now
            self.in_period[id(instance)] = instance
        chars, service_s = self.sample(self.rng)
        if self.cores is None:
            yield env.timeout(service_s)
        else:
            with self.cores.request() as core:
                yield core
                yield env.timeout(service_s)
        instance.last_used = env.now
        if not self.idle.get_queue:  # no request takes over at once: the billable period ends
            self.usage.billed_instance_s += self._billed(env.now - instance.busy_since)
            instance.busy_since = None
            del self.in_period[id(instance)]
        self.idle.put(instance)
        return Outcome(arrived, env.now, chars, ok=True, cold=cold)

    def settle(self) -> None:
        """Bill the periods still open (instances busy when the run ends)."""
        for instance in self.in_period.values():
            self.usage.billed_instance_s += self._billed(self.env.now - (instance.busy_since or 0.0))
        self.in_period.clear()

    def _billed(self, seconds: float) -> float:
        step = self.config.billing_step_s
        return math.ceil(seconds / step - 1e-9) * step

    def _start_instance(self) -> Generator[simpy.Event, object, None]:
        self.instances += 1
        self.starting += 1
        self.usage.cold_starts += 1
        startup = self.startup_s(self.rng)
        yield self.env.timeout(startup)
        self.usage.billed_instance_s += self._billed(startup)
        self.starting -= 1
        self.idle.put(_Instance(last_used=self.env.now))

    def _watch(self) -> Generator[simpy.Event, object, None]:
        """Every second: retire instances idle too long, record the instance count."""
        while True:
            now = self.env.now
            for instance in list(self.idle.items):
                if self.instances <= self.config.min_instances:
                    break
                if now - instance.last_used >= self.config.idle_timeout_s:
                    self.idle.items.remove(instance)
                    self.instances -= 1
            busy = self.instances - self.starting - len(self.idle.items)
            self.usage.timeline.append((now, self.instances, busy))
            yield self.env.timeout(1.0)


# --- load ---------------------------------------------------------------------------------------


def closed_users(
    env: simpy.Environment,
    target: CloudRunService,
    users: int,
    think_max_s: float,
    retry_pause_s: float,
    out: list[Outcome],
    rng: random.Random,
) -> None:
    """Locust-like users (loadtest/locustfile.py): each sends a request, waits for the answer,
    pauses uniform(0, think_max_s) — after a refusal ``retry_pause_s`` more — and sends the next.
    They start within the first second, as Locust spawns them."""

    def user() -> Generator[simpy.Event, object, None]:
        yield env.timeout(rng.uniform(0, 1))
        while True:
            outcome = yield env.process(target.handle())
            out.append(outcome)  # type: ignore[arg-type]
            pause = rng.uniform(0, think_max_s)
            yield env.timeout(pause if outcome.ok else pause + retry_pause_s)  # type: ignore[union-attr]

    for _ in range(users):
        env.process(user())


def poisson_arrivals(
    rate_per_s: float, until_s: float, rng: random.Random, burst: tuple[float, float, float] | None = None
) -> Iterable[float]:
    """Arrival times of a Poisson process of ``rate_per_s``; ``burst`` = (start_s, length_s,
    factor) multiplies the rate inside that window (thinning keeps it exact)."""
    peak = rate_per_s * (burst[2] if burst else 1.0)
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= until_s:
            return
        inside = burst is not None and burst[0] <= t < burst[0] + burst[1]
        if inside or rng.random() < rate_per_s / peak:
            yield t


def open_requests(
    env: simpy.Environment, target: CloudRunService, arrivals: Iterable[float], out: list[Outcome]
) -> None:
    """Requests at the given times (an open load: nobody waits for an answer before sending)."""

    def request() -> Generator[simpy.Event, object, None]:
        out.append((yield env.process(target.handle())))  # type: ignore[arg-type]

    def source() -> Generator[simpy.Event, object, None]:
        for t in arrivals:
            yield env.timeout(max(0.0, t - env.now))
            env.process(request())

    env.process(source())


@dataclass(frozen=True)
class Redelivery:
    """The push subscription's retry policy (terraform/pubsub.tf)."""

    min_backoff_s: float = 10.0
    max_backoff_s: float = 600.0
    max_attempts: int = 5

    def backoff_s(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.min_backoff_s * 2 ** (attempt - 1))


def events(
    env: simpy.Environment,
    target: CloudRunService,
    arrivals: Iterable[float],
    policy: Redelivery,
    out: list[Outcome],
) -> None:
    """Pub/Sub push: each event delivered until a delivery succeeds or ``max_attempts`` are spent
    (then dead-lettered: ``ok`` False); its latency runs from publication to the successful answer."""

    def deliver() -> Generator[simpy.Event, object, None]:
        published = env.now
        for attempt in range(1, policy.max_attempts + 1):
            outcome: Outcome = yield env.process(target.handle())  # type: ignore[assignment]
            if outcome.ok:
                out.append(Outcome(published, env.now, outcome.chars, True, outcome.cold, attempt))
                return
            if attempt < policy.max_attempts:
                yield env.timeout(policy.backoff_s(attempt))
        out.append(Outcome(published, env.now, 0, ok=False, attempts=policy.max_attempts))

    def source() -> Generator[simpy.Event, object, None]:
        for t in arrivals:
            yield env.timeout(max(0.0, t - env.now))
            env.process(deliver())

    env.process(source())
