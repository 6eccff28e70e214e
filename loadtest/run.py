"""Side-by-side load test: the concurrency=1 fleet against the single-process thread-pool baseline,
same CPUs, same engine threads, same offered load; or Locust alone against a deployed service.

    python -m loadtest.run --instances 2 --users 2,4,8,16 --duration 30
    python -m loadtest.run --target https://tts-xyz.a.run.app --users 1,4,16 --duration 60

Writes into --out: summary.json, summary.csv, comparison.png, Locust's CSV files (locust/), the
per-request logs and the server logs. Every process it starts is stopped, also on Ctrl-C.
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
from loadtest.deployments import Deployment, start_baseline, start_fleet
from loadtest.plot import draw
from loadtest.processes import exit_on_sigterm
from loadtest.stats import Step, median_steps, ratios, summarize

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest"


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
    p.add_argument("--max-queue", type=int, default=2, help="fleet: pending requests per instance")
    p.add_argument("--queue-timeout", type=float, default=10, help="fleet: seconds a request may wait")
    p.add_argument(
        "--baseline-workers", type=int, default=None, help="baseline thread pool (default: --instances)"
    )
    p.add_argument("--engine-threads", type=int, default=1, help="TTS_THREADS for every engine")
    p.add_argument("--cpus", default=None, help="cores for the servers, e.g. 0,1 (default: all allowed)")
    p.add_argument("--architectures", default="fleet,baseline")
    p.add_argument("--user-classes", default="", help="Locust user classes (default: all scenarios)")
    p.add_argument("--target", default=None, help="a deployed base URL: run Locust against it only")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


def run_locust(url: str, users: int, args: argparse.Namespace, out: Path, label: str) -> Path:
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
    label: str,
    args: argparse.Namespace,
    out: Path,
) -> Step:
    cpu_before = deployment.servers.cpu_seconds() if deployment else None
    log = run_locust(url, users, args, out, label)
    cpu = deployment.servers.cpu_seconds() - cpu_before if deployment and cpu_before is not None else None
    step = summarize(arch, users, log, cpu)
    if step.requests == 0:
        raise RuntimeError(f"Locust sent no requests; see {out / 'locust' / f'{label}.out'}")
    print(format_row(step), flush=True)
    return step


def format_row(s: Step) -> str:
    cpu = "" if s.cpu_util is None else f"{s.cpu_util:5.2f}"
    return (
        f"{s.architecture:9} {s.users:5d} {s.requests:6d} {s.ok:6d} {100 * s.error_rate:6.1f}% "
        f"{s.p50_ms:8.0f} {s.p95_ms:8.0f} {s.p99_ms:8.0f} {s.qps:7.1f} {cpu:>6}"
    )


HEADER = (
    f"{'arch':9} {'users':>5} {'reqs':>6} {'ok':>6} {'errors':>7} "
    f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'qps':>7} {'cpu':>6}"
)


def machine(cpus: Sequence[int] | None) -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "server_cpus": list(cpus) if cpus else sorted(os.sched_getaffinity(0)),
        "processor": cpu_model(),
        "python": platform.python_version(),
        "engines": os.environ.get("TTS_ENGINES", "hibari,kokoro"),
    }


def write(
    steps: list[Step],
    rounds: list[Step],
    args: argparse.Namespace,
    cpus: Sequence[int] | None,
    out: Path,
    pids: list[int],
    memory: dict[str, float],
) -> dict:
    summary = {
        "machine": machine(cpus),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "steps": [s.row() for s in steps],  # per architecture and load: the median over rounds
        "rounds": [s.row() for s in rounds],
        "ratios": ratios(steps, "fleet", "baseline"),
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
    draw(steps, out / "comparison.png", title)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cpus = [int(c) for c in args.cpus.split(",")] if args.cpus else None
    print(HEADER, flush=True)
    rounds: list[Step] = []
    pids: list[int] = []
    memory: dict[str, float] = {}
    levels = [int(u) for u in args.users.split(",")]
    if args.target:
        target = args.target.rstrip("/")
        for r in range(args.rounds):
            rounds += [measure(None, target, "target", u, f"target-u{u}-r{r}", args, out) for u in levels]
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
            "baseline": lambda scratch: start_baseline(
                args.baseline_workers or args.instances,
                scratch / "baseline-audio",
                out / "logs",
                cpus,
                args.engine_threads,
            ),
        }
        architectures = args.architectures.split(",")
        with tempfile.TemporaryDirectory(prefix="tts-loadtest-") as tmp, ExitStack() as stack:
            deployments: dict[str, Deployment] = {}
            for arch in architectures:
                started = time.monotonic()
                deployments[arch] = stack.enter_context(starters[arch](Path(tmp)))
                print(f"# {arch} ready in {time.monotonic() - started:.1f} s", flush=True)
            # Both are up all along (an idle server costs nothing) and take turns at each load level,
            # in alternating order, so drift on a shared machine hits both alike.
            for r in range(args.rounds):
                for users in levels:
                    for arch in architectures if r % 2 == 0 else architectures[::-1]:
                        deployment = deployments[arch]
                        label = f"{arch}-u{users}-r{r}"
                        rounds.append(measure(deployment, deployment.url, arch, users, label, args, out))
            for arch, deployment in deployments.items():
                memory[arch] = round(sum(deployment.servers.peak_rss_bytes()) / 2**20, 1)
        for deployment in deployments.values():
            pids += [pid for group in deployment.groups() for pid in group.seen_pids]
            left = deployment.alive()
            if left:
                raise RuntimeError(f"{deployment.name}: processes still running after stop: {left}")
    steps = median_steps(rounds)
    summary = write(steps, rounds, args, cpus, out, pids, memory)
    for row in summary["ratios"]:
        print("# ratio", json.dumps(row))
    print(f"# wrote {out / 'summary.json'}, {out / 'summary.csv'}, {out / 'comparison.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
