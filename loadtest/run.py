"""Side-by-side load test: the concurrency=1 fleet against the single-process thread-pool baseline,
same CPUs, same engine threads, same offered load; or Locust alone against a deployed service.

    python -m loadtest.run --instances 2 --users 2,4,8,16 --duration 30
    python -m loadtest.run --scenario mixed,isolation --users 4,16 --duration 20
    python -m loadtest.run --architectures container-fleet,fleet,baseline --users 2,4 --duration 30
    python -m loadtest.run --target https://tts-xyz.a.run.app --users 1,4,16 --duration 60

The headline is goodput: requests answered successfully within a deadline, per second and as a
share of all requests (refusals and late answers are failures). Each kind of request's deadline is
--deadline-factor × its unloaded latency, measured one request at a time at the start of the run
(the fastest architecture's median; at least --deadline-floor-ms), or --deadline-ms for every kind.

Scenarios: "mixed" (realistic traffic) and "isolation" (--long-share of the users send 150-word
passages, the others five-word prompts; the short requests' figures are the ones that count).

Writes into --out: summary.json, summary.csv, comparison.png (mixed), isolation.png (the short
requests of the isolation scenario), Locust's CSV files (locust/), the per-request logs and the
server logs. Every process it starts is stopped, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from function.local import cpu_model
from loadtest.containers import build
from loadtest.deployments import Deployment, start_baseline, start_container_fleet, start_fleet
from loadtest.goodput import deadlines, unloaded_ms
from loadtest.plot import draw
from loadtest.processes import exit_on_sigterm
from loadtest.stats import Step, median_steps, ratios, summarize
from loadtest.traffic import SCENARIOS, long_users

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest"
ARCHITECTURES = ("fleet", "container-fleet", "baseline", "bounded-pool")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--instances", type=int, default=2, help="fleet size (and the baseline's thread pool size)"
    )
    p.add_argument(
        "--users", default="2,4,8,16", help="comma-separated concurrent user counts, one step each"
    )
    p.add_argument("--duration", type=int, default=30, help="seconds per step")
    p.add_argument("--rounds", type=int, default=1, help="repeat every step; the figures are medians")
    p.add_argument("--max-requests", type=int, default=20_000, help="cap per step")
    p.add_argument("--think", type=float, default=0.5, help="max pause between a user's requests, s")
    p.add_argument(
        "--max-queue", type=int, default=2, help="fleet, bounded-pool: pending requests per instance"
    )
    p.add_argument(
        "--queue-timeout", type=float, default=10, help="fleet, bounded-pool: seconds a request may wait"
    )
    p.add_argument(
        "--baseline-workers", type=int, default=None, help="baseline thread pool (default: --instances)"
    )
    p.add_argument("--engine-threads", type=int, default=1, help="TTS_THREADS for every engine")
    p.add_argument("--cpus", default=None, help="cores for the servers, e.g. 0,1 (default: all allowed)")
    p.add_argument(
        "--architectures",
        default="fleet,baseline",
        help="any of fleet, container-fleet (the fleet as containers of the production image), "
        "baseline (unbounded queue), bounded-pool (the pool with the fleet's --max-queue and "
        "--queue-timeout)",
    )
    p.add_argument(
        "--image",
        default=None,
        help="container-fleet: the image to run (default: build the default one, tests/image/build.sh)",
    )
    p.add_argument(
        "--container-cpus", type=float, default=1.0, help="container-fleet: CPU limit of each container"
    )
    p.add_argument("--user-classes", default="", help="Locust user classes (default: all of the scenario)")
    p.add_argument("--scenario", default="mixed", help="comma-separated: mixed, isolation")
    p.add_argument(
        "--long-share", type=float, default=0.25, help="isolation: share of users sending long texts"
    )
    p.add_argument(
        "--deadline-factor", type=float, default=2.0, help="deadline = this × the unloaded latency"
    )
    p.add_argument("--deadline-floor-ms", type=float, default=20, help="no deadline shorter than this")
    p.add_argument(
        "--deadline-ms", type=float, default=None, help="one fixed deadline for every kind of request"
    )
    p.add_argument(
        "--calibration-samples", type=int, default=3, help="unloaded requests per kind and architecture"
    )
    p.add_argument("--target", default=None, help="a deployed base URL: run Locust against it only")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    for scenario in args.scenario.split(","):
        if scenario not in SCENARIOS:
            p.error(f"--scenario: {scenario!r} is not one of {', '.join(SCENARIOS)}")
    for arch in args.architectures.split(","):
        if arch not in ARCHITECTURES:
            p.error(f"--architectures: {arch!r} is not one of {', '.join(ARCHITECTURES)}")
    if "isolation" in args.scenario.split(",") and min(int(u) for u in args.users.split(",")) < 2:
        p.error("--scenario isolation needs at least 2 users per step (one long, one short)")
    return args


def run_locust(
    url: str, users: int, args: argparse.Namespace, out: Path, label: str, scenario: str = "mixed"
) -> Path:
    """One bounded headless Locust run; returns its per-request log."""
    (out / "locust").mkdir(parents=True, exist_ok=True)
    log = out / "requests" / f"{label}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        "TTS_LOADTEST_LOG": str(log),
        "TTS_LOADTEST_MAX_REQUESTS": str(args.max_requests),
        "TTS_LOADTEST_THINK_S": str(args.think),
        "TTS_LOADTEST_SCENARIO": scenario,
        "TTS_LOADTEST_LONG_USERS": str(long_users(users, getattr(args, "long_share", 0.25))),
    }
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        url,
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{args.duration}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(out / "locust" / label),
        "--only-summary",
        "--loglevel",
        "WARNING",
        *args.user_classes.split(),
    ]
    with (out / "locust" / f"{label}.out").open("w") as console:
        # Exit code 1 only means some requests failed, which the figures report.
        subprocess.run(
            command,
            env=env,
            stdout=console,
            stderr=subprocess.STDOUT,
            timeout=args.duration + 60,
            check=False,
        )
    log.touch()
    return log


def measure(
    deployment: Deployment | None,
    url: str,
    arch: str,
    users: int,
    scenario: str,
    label: str,
    args: argparse.Namespace,
    out: Path,
    limits: dict[str, float],
) -> list[Step]:
    cpu_before = deployment.servers.cpu_seconds() if deployment else None
    log = run_locust(url, users, args, out, label, scenario)
    cpu = deployment.servers.cpu_seconds() - cpu_before if deployment and cpu_before is not None else None
    steps = summarize(arch, users, log, cpu, limits, scenario)
    if sum(s.requests for s in steps) == 0:
        # A slow engine may finish nothing within a step; a broken Locust shows in its own output.
        print(f"# {label}: no request finished within the step; see {out / 'locust' / f'{label}.out'}")
    for step in steps:
        print(format_row(step), flush=True)
    return steps


def format_row(s: Step) -> str:
    cpu = "" if s.cpu_util is None else f"{s.cpu_util:5.2f}"
    return (
        f"{s.architecture:12} {s.scenario + '/' + s.traffic:15} {s.users:5d} {s.requests:6d} "
        f"{100 * s.goodput_share:6.1f}% {s.goodput_rps:7.1f} {s.ok:6d} {s.late:5d} "
        f"{100 * s.error_rate:6.1f}% {s.p50_ms:8.0f} {s.p95_ms:8.0f} {s.p99_ms:8.0f} {s.qps:7.1f} {cpu:>6}"
    )


HEADER = (
    f"{'arch':12} {'scenario':15} {'users':>5} {'reqs':>6} {'good':>7} {'good/s':>7} {'ok':>6} "
    f"{'late':>5} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'ok/s':>7} {'cpu':>6}"
)


def machine(cpus: Sequence[int] | None) -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "server_cpus": list(cpus) if cpus else sorted(os.sched_getaffinity(0)),
        "processor": cpu_model(),
        "python": platform.python_version(),
        "engines": os.environ.get("TTS_ENGINES", "hibari,kokoro"),
        # 1-, 5- and 15-minute load averages now (run: as it ends; bench: as it starts): other jobs
        # on the machine skew every figure
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write(
    steps: list[Step],
    rounds: list[Step],
    args: argparse.Namespace,
    cpus: Sequence[int] | None,
    out: Path,
    pids: list[int],
    memory: dict[str, float],
    unloaded: dict[str, dict[str, float]],
    limits: dict[str, float],
    load_start: list[float],
) -> dict:
    summary = {
        "machine": {**machine(cpus), "load_average_start": load_start},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        # goodput counts a request of each kind as good when answered successfully within these
        "deadlines_ms": limits,
        "unloaded_ms": unloaded,  # per architecture and kind: median, one request at a time
        "steps": [s.row() for s in steps],  # per architecture, scenario, traffic and load: medians
        "rounds": [s.row() for s in rounds],
        "ratios": [
            *ratios(steps, "fleet", "baseline"),
            *ratios(steps, "fleet", "bounded-pool"),
            *ratios(steps, "fleet", "container-fleet"),
        ],
        "peak_rss_mib": memory,  # all server processes of each architecture together
        "started_pids": sorted(pids),  # all stopped; lets a test check
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(steps[0].row()))
        writer.writeheader()
        writer.writerows(s.row() for s in steps)
    title = (
        f"Locust against {args.target}"
        if args.target
        else f"{args.instances} instance(s) vs 1 process x {args.baseline_workers or args.instances} "
        f"threads; {len(summary['machine']['server_cpus'])} CPU(s); engine {summary['machine']['engines']}"
    )
    mixed = [s for s in steps if s.scenario == "mixed"]
    if mixed:
        draw(mixed, out / "comparison.png", title)
    short = [s for s in steps if s.scenario == "isolation" and s.traffic == "short"]
    if short:
        draw(
            short,
            out / "isolation.png",
            f"Short requests while {args.long_share:.0%} of users send long ones; {title}",
        )
    return summary


def calibrate(
    endpoints: dict[str, str], args: argparse.Namespace
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Each architecture's unloaded latency per kind of request, and the deadlines taken from them."""
    kinds = list(dict.fromkeys(k for scenario in args.scenario.split(",") for k in SCENARIOS[scenario]))
    unloaded: dict[str, dict[str, float]] = {}
    if args.deadline_ms is None:
        token = os.environ.get("TTS_LOADTEST_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for arch, url in endpoints.items():
            unloaded[arch] = unloaded_ms(url, kinds, args.calibration_samples, headers)
            print(f"# {arch} unloaded ms: {json.dumps(unloaded[arch])}", flush=True)
    limits = deadlines(kinds, unloaded, args.deadline_factor, args.deadline_floor_ms, args.deadline_ms)
    print(f"# deadlines ms: {json.dumps(limits)}", flush=True)
    return unloaded, limits


def run_steps(
    deployments: dict[str, Deployment | None],
    endpoints: dict[str, str],
    args: argparse.Namespace,
    out: Path,
) -> tuple[list[Step], dict[str, dict[str, float]], dict[str, float]]:
    """Every architecture takes its turn at each scenario and load level, in alternating order each
    round, so drift on a shared machine hits all alike."""
    unloaded, limits = calibrate(endpoints, args)
    print(HEADER, flush=True)
    architectures = list(endpoints)
    rounds: list[Step] = []
    for r in range(args.rounds):
        for scenario in args.scenario.split(","):
            for users in (int(u) for u in args.users.split(",")):
                for arch in architectures if r % 2 == 0 else architectures[::-1]:
                    # The mixed scenario's labels stay as they were before scenarios existed.
                    label = f"{arch}-{'' if scenario == 'mixed' else scenario + '-'}u{users}-r{r}"
                    deployment, url = deployments[arch], endpoints[arch]
                    rounds += measure(deployment, url, arch, users, scenario, label, args, out, limits)
    return rounds, unloaded, limits


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    load_start = [round(x, 2) for x in os.getloadavg()]
    print(f"# load average at start: {load_start}", flush=True)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cpus = [int(c) for c in args.cpus.split(",")] if args.cpus else None
    pids: list[int] = []
    memory: dict[str, float] = {}
    if args.target:
        rounds, unloaded, limits = run_steps({"target": None}, {"target": args.target.rstrip("/")}, args, out)
    else:
        starters: dict[str, Callable[[Path], Deployment]] = {
            "fleet": lambda scratch: start_fleet(
                args.instances,
                scratch / "fleet-audio",
                out / "logs",
                cpus,
                args.max_queue,
                args.queue_timeout,
                args.engine_threads,
            ),
            "container-fleet": lambda scratch: start_container_fleet(
                args.instances,
                args.image or build(),
                scratch / "container-fleet-audio",
                out / "logs",
                args.container_cpus,
                args.max_queue,
                args.queue_timeout,
                args.engine_threads,
            ),
            "baseline": lambda scratch: start_baseline(
                args.baseline_workers or args.instances,
                scratch / "baseline-audio",
                out / "logs",
                cpus,
                args.engine_threads,
            ),
            "bounded-pool": lambda scratch: start_baseline(
                args.baseline_workers or args.instances,
                scratch / "bounded-pool-audio",
                out / "logs",
                cpus,
                args.engine_threads,
                args.max_queue,
                args.queue_timeout,
            ),
        }
        with tempfile.TemporaryDirectory(prefix="tts-loadtest-") as tmp, ExitStack() as stack:
            # All are up all along (an idle server costs nothing) and take turns.
            deployments: dict[str, Deployment] = {}
            for arch in args.architectures.split(","):
                started = time.monotonic()
                deployments[arch] = stack.enter_context(starters[arch](Path(tmp)))
                print(f"# {arch} ready in {time.monotonic() - started:.1f} s", flush=True)
            endpoints = {arch: d.url for arch, d in deployments.items()}
            rounds, unloaded, limits = run_steps(dict(deployments), endpoints, args, out)
            for arch, deployment in deployments.items():
                memory[arch] = round(sum(deployment.servers.peak_rss_bytes()) / 2**20, 1)
        for deployment in deployments.values():
            pids += [pid for group in deployment.groups() for pid in group.seen_pids]
            left = deployment.alive()
            if left:
                raise RuntimeError(f"{deployment.name}: processes still running after stop: {left}")
    steps = median_steps(rounds)
    summary = write(steps, rounds, args, cpus, out, pids, memory, unloaded, limits, load_start)
    for row in summary["ratios"]:
        print("# ratio", json.dumps(row))
    print(f"# load average at end: {summary['machine']['load_average']}")
    print(f"# wrote {out / 'summary.json'}, {out / 'summary.csv'} and the charts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
