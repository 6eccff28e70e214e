"""The capacity model (loadtest.capacity) against queueing theory's closed forms (M/M/c, M/D/1),
against small scenarios worked out by hand (a queue timeout, a cold start and its bill, a Pub/Sub
redelivery), and reading its inputs (bench.json, the async jobs' parts file). Seconds, no servers."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import simpy

from loadtest.capacity.inputs import from_bench, job_parts
from loadtest.capacity.platform import CloudRunService, Outcome, Redelivery, Service, events, open_requests
from loadtest.capacity.prices import GIB_SECOND, PER_REQUEST, VCPU_SECOND
from loadtest.capacity.scenario import Arrivals, simulate


def erlang_c_wait_s(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean time in queue of M/M/c (Erlang C)."""
    a = arrival_rate / service_rate
    rho = a / servers
    tail = a**servers / math.factorial(servers) / (1 - rho)
    p_wait = tail / (sum(a**k / math.factorial(k) for k in range(servers)) + tail)
    return p_wait / (servers * service_rate - arrival_rate)


def no_startup(_: random.Random) -> float:
    return 0.0


def test_mmc_mean_response_time_matches_erlang_c() -> None:
    servers, arrival_rate, service_rate = 4, 3.0, 1.0  # 75 % busy
    result = simulate(
        lambda rng: (10, rng.expovariate(service_rate)),
        no_startup,
        Service(max_instances=servers, min_instances=servers, pending_timeout_s=math.inf),
        Arrivals(arrival_rate),
        duration_s=12_000,
        deadline_s=math.inf,
        warmup_s=200,
        seed=1,
    )
    expected_ms = 1000 * (erlang_c_wait_s(servers, arrival_rate, service_rate) + 1 / service_rate)
    assert result.refused == 0 and result.requests > 30_000
    assert result.mean_ms == pytest.approx(expected_ms, rel=0.05)  # 1.51 s


def test_md1_mean_response_time_matches_pollaczek_khinchine() -> None:
    arrival_rate, service_s = 0.5, 1.0  # M/D/1, 50 % busy: mean wait rho / (2 mu (1 - rho)) = 0.5 s
    result = simulate(
        lambda _: (10, service_s),
        no_startup,
        Service(max_instances=1, min_instances=1, pending_timeout_s=math.inf),
        Arrivals(arrival_rate),
        duration_s=40_000,
        deadline_s=math.inf,
        warmup_s=100,
        seed=2,
    )
    assert result.mean_ms == pytest.approx(1500, rel=0.05)
    assert result.p50_ms >= 1000  # nobody is served faster than the deterministic service time


def run_trace(service: Service, times: list[float], service_s: float, startup_s: float = 0.0):
    env = simpy.Environment()
    target = CloudRunService(env, service, lambda _: (40, service_s), lambda _: startup_s, random.Random(0))
    out: list[Outcome] = []
    open_requests(env, target, times, out)
    env.run(until=100)
    return sorted(out, key=lambda o: o.finished), target.usage


def test_requests_wait_for_the_one_instance_and_fail_after_the_pending_timeout() -> None:
    outcomes, usage = run_trace(
        Service(max_instances=1, min_instances=1, pending_timeout_s=1.5), [0, 0, 0], service_s=1.0
    )
    assert [(o.ok, round(o.latency_s, 6)) for o in outcomes] == [(True, 1.0), (False, 1.5), (True, 2.0)]
    assert usage.billed_instance_s == pytest.approx(2.0) and usage.cold_starts == 0


def test_a_bounded_queue_refuses_at_once() -> None:
    outcomes, _ = run_trace(
        Service(max_instances=1, min_instances=1, max_pending=1, pending_timeout_s=10), [0, 0, 0], 1.0
    )
    assert sorted((o.ok, round(o.latency_s, 6)) for o in outcomes) == [(False, 0.0), (True, 1.0), (True, 2.0)]


def test_a_cold_start_is_waited_for_and_billed_then_the_idle_instance_goes() -> None:
    service = Service(max_instances=2, pending_timeout_s=10, idle_timeout_s=5)
    outcomes, usage = run_trace(service, [0.0, 0.0, 20.0], service_s=0.25, startup_s=2.0)
    assert [round(o.latency_s, 6) for o in outcomes] == [2.25, 2.25, 2.25]  # 3rd: scaled to zero before
    assert all(o.cold for o in outcomes) and usage.cold_starts == 3
    billed = 3 * (2.0 + 0.3)  # startup + service rounded up to 100 ms
    assert usage.billed_instance_s == pytest.approx(billed)
    assert max(n for _, n, _ in usage.timeline) == 2 and usage.timeline[-1][1] == 0
    result = simulate(
        lambda _: (40, 0.25),
        lambda _: 2.0,
        Service(max_instances=2, idle_timeout_s=5),
        Arrivals(0.05),
        duration_s=1000,
        deadline_s=1.0,
        vcpu=2,
        memory_gib=4,
        seed=3,
    )
    dollars = result.dollars_per_hour * 1000 / 3600
    per_s = 2 * VCPU_SECOND + 4 * GIB_SECOND
    bill = result.cold_starts * 2.0 * per_s + result.ok * (0.3 * per_s + PER_REQUEST)
    assert dollars == pytest.approx(bill, rel=0.01) and result.cold_starts > result.ok / 2
    assert 0 < result.good < result.ok == result.requests  # cold ones (2.25 s) miss the 1 s deadline


def test_pubsub_redelivers_a_refused_event_after_its_backoff() -> None:
    env = simpy.Environment()
    service = Service(max_instances=1, min_instances=1, pending_timeout_s=1.0)
    target = CloudRunService(env, service, lambda _: (40, 5.0), no_startup, random.Random(0))
    out: list[Outcome] = []
    events(env, target, [0.0, 0.0], Redelivery(min_backoff_s=10, max_backoff_s=600, max_attempts=5), out)
    env.run(until=100)
    first, second = sorted(out, key=lambda o: o.finished)
    assert (first.attempts, first.latency_s) == (1, 5.0)
    assert (second.attempts, second.latency_s) == (2, 1.0 + 10.0 + 5.0)  # refused, backoff, served
    assert Redelivery().backoff_s(1) == 10 and Redelivery().backoff_s(7) == 600


def test_dead_letter_after_max_attempts() -> None:
    env = simpy.Environment()
    target = CloudRunService(
        env,
        Service(max_instances=1, min_instances=1, max_pending=0),
        lambda _: (40, 1000.0),
        no_startup,
        random.Random(0),
    )
    out: list[Outcome] = []
    events(env, target, [0.0, 0.0], Redelivery(10, 600, 3), out)
    env.run(until=200)
    (dead,) = out  # the first event is still being served
    assert not dead.ok and dead.attempts == 3 and dead.finished == pytest.approx(10 + 20)


def test_inputs_come_from_bench_json_and_the_jobs_parts_file(tmp_path: Path) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps(
            {
                "engine_threads": 2,
                "cold_start_runs_ms": [3000.0, 5000.0],
                "warm_http_samples": [{"chars": 60, "ms": 1000.0}, {"chars": 70, "ms": 2000.0}],
            }
        )
    )
    profile = from_bench(bench, "kokoro", memory_gib=3)
    assert profile.service == ((60, 1.0), (70, 2.0)) and profile.vcpu == 2
    assert profile.startup_s(random.Random(0)) in (1.5, 3.5)  # cold start less the median warm request
    parts = tmp_path / "jobs-parts.jsonl"
    assert job_parts("kokoro", parts) == ()  # absent: not needed
    lines = [
        {"engine": "kokoro", "chars": 300, "service_s": 9.5, "cold": False, "cpu": "x", "instances": 2},
        {"engine": "kokoro", "chars": 300, "service_s": 12.0, "cold": True, "cpu": "x", "instances": 2},
        {"engine": "hibari", "chars": 300, "service_s": 0.2, "cold": False, "cpu": "x", "instances": 2},
    ]
    parts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert job_parts("kokoro", parts) == ((300, 9.5),)  # warm parts of that engine only
