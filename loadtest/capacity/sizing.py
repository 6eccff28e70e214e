"""Size max_instances from the model: for each engine (a bench.json) and load, sweep
max_instances and report goodput, p95, instances and cost; chart p95 and cost against
max_instances; recommend the smallest max_instances that answers at least --target of the
requests within the deadline.

    python -m loadtest.capacity.sizing \\
        --bench hibari=loadtest/results/bench-hibari/bench.json:2 \\
        --bench kokoro=loadtest/results/bench-kokoro/bench.json:3 \\
        --bench cosyvoice=loadtest/results/bench-cosyvoice/bench.json:4 \\
        --deadline-s kokoro=30,cosyvoice=30 --out loadtest/results/capacity

Each --bench is ENGINE=PATH:MEMORY_GIB (the instance's memory, as billed). The load is closed-loop
users as in the seed's guide: 50 Locust users there made 4.7 req/s at 3.2 s mean latency, so a
user pauses 50 / 4.7 - 3.2 = 7.4 s on average between answer and next request (uniform 0-14.8 s).
--users 50,500,5000 is that load, 10x and 100x. The deadline is 2x the engine's median warm
request unless --deadline-s names it (the seed's 30 s gateway timeout for the slow engines).
Writes sizing.json, sizing.csv and sizing.png into --out; prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from loadtest.capacity.inputs import Profile, from_bench, job_parts
from loadtest.capacity.platform import Sampler, Service
from loadtest.capacity.prices import MANAGED_TTS
from loadtest.capacity.scenario import Arrivals, Users, simulate

GUIDE_THINK_MAX_S = 2 * (50 / 4.7 - 3.2)  # uniform(0, this): mean 7.4 s
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "capacity"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", action="append", required=True, help="ENGINE=PATH:MEMORY_GIB, repeatable")
    p.add_argument("--users", default="50,500,5000")
    p.add_argument("--max-instances", default="1,2,5,10,20,50,100,200,500,1000,2000,5000")
    p.add_argument("--deadline-s", default="", help="ENGINE=SECONDS,... (default: 2x median warm request)")
    p.add_argument("--think-max-s", type=float, default=GUIDE_THINK_MAX_S)
    p.add_argument("--duration", type=float, default=300, help="simulated seconds per point")
    p.add_argument("--warmup", type=float, default=60, help="seconds left out of the figures (not the cost)")
    p.add_argument("--target", type=float, default=0.99, help="goodput share the recommendation must reach")
    p.add_argument(
        "--event-deadline-s", type=float, default=600, help="events: done within this of publication"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


def profiles(specs: list[str]) -> list[Profile]:
    found = []
    for spec in specs:
        engine, rest = spec.split("=", 1)
        path, memory = rest.rsplit(":", 1)
        found.append(from_bench(Path(path), engine, float(memory)))
    return found


def deadline_s(profile: Profile, overrides: dict[str, float]) -> float:
    return overrides.get(profile.engine, 2 * statistics.median(s for _, s in profile.service))


def sweep(
    profile: Profile, users: int, grid: list[int], deadline: float, args: argparse.Namespace
) -> list[dict]:
    rows = []
    for max_instances in grid:
        result = simulate(
            profile.sample,
            profile.startup_s,
            # Cloud Run: pending requests wait 10 s, or the mean startup time when longer.
            Service(
                max_instances=max_instances,
                pending_timeout_s=max(10.0, statistics.fmean(profile.cold_start_s)),
            ),
            Users(users, args.think_max_s),
            duration_s=args.duration,
            deadline_s=deadline,
            vcpu=profile.vcpu,
            memory_gib=profile.memory_gib,
            warmup_s=args.warmup,
            seed=args.seed,
        )
        row = {
            "engine": profile.engine,
            "users": users,
            "max_instances": max_instances,
            "deadline_s": deadline,
        }
        rows.append(row | result.row() | {"timeline": result.timeline})
        print(
            f"{profile.engine:10} {users:6d} {max_instances:6d} {100 * result.goodput_share:6.1f}% "
            f"{result.goodput_rps:8.1f} {result.p95_ms:9.0f} {result.instances_mean:8.1f} "
            f"{result.instances_max:6d} "
            f"{result.dollars_per_hour:9.3f} {result.dollars_per_million_chars or float('nan'):9.2f}",
            flush=True,
        )
        if result.instances_max < max_instances and result.goodput_share >= args.target:
            break  # more headroom changes nothing: the load never reached the ceiling
    return rows


def event_sweep(profile: Profile, users: int, grid: list[int], args: argparse.Namespace) -> list[dict]:
    """The event path at the same offered rate: Pub/Sub push, redelivery with backoff. Service
    times are the async jobs' warm parts (loadtest/results/jobs-parts.jsonl) when that file holds
    some for the engine, else the bench's requests."""
    parts = job_parts(profile.engine)
    sample: Sampler = (lambda rng: rng.choice(parts)) if parts else profile.sample
    rate = users / (args.think_max_s / 2 + profile.mean_service_s)
    rows = []
    # Fewer instances than the busy ones on average cannot keep up: start the grid there.
    busy = rate * statistics.fmean(s for _, s in (parts or profile.service))
    for max_instances in [n for n in grid if n >= busy] or grid[-1:]:
        result = simulate(
            sample,
            profile.startup_s,
            Service(
                max_instances=max_instances,
                pending_timeout_s=max(10.0, statistics.fmean(profile.cold_start_s)),
            ),
            Arrivals(rate, as_events=True),
            duration_s=args.duration,
            deadline_s=args.event_deadline_s,
            vcpu=profile.vcpu,
            memory_gib=profile.memory_gib,
            warmup_s=args.warmup,
            seed=args.seed,
        )
        source = "jobs-parts.jsonl" if parts else "bench"
        rows.append(
            {
                "engine": profile.engine,
                "users": users,
                "max_instances": max_instances,
                "events_per_s": round(rate, 3),
                "service_times": source,
            }
            | result.row()
        )
        if result.goodput_share >= args.target:
            break
    return rows


def recommend(rows: list[dict], target: float) -> list[dict]:
    """Per engine and load: the smallest max_instances whose goodput share reaches ``target``."""
    picks = []
    for key in dict.fromkeys((r["engine"], r["users"]) for r in rows):
        fits = [r for r in rows if (r["engine"], r["users"]) == key and r["goodput_share"] >= target]
        best = min(fits, key=lambda r: r["max_instances"]) if fits else None
        figures = ("goodput_share", "p50_ms", "p95_ms", "p99_ms", "instances_mean", "instances_max")
        figures += ("dollars_per_hour", "dollars_per_million_chars", "timeline")
        picks.append(
            {"engine": key[0], "users": key[1], "max_instances": best["max_instances"] if best else None}
            | ({k: best[k] for k in figures} if best else {})
        )
    return picks


def draw(rows: list[dict], picks: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    engines = list(dict.fromkeys(r["engine"] for r in rows))
    fig, axes = plt.subplots(4, len(engines), figsize=(5.5 * len(engines), 14), squeeze=False)
    styles = ["-o", "--s", ":^", "-.D"]
    for col, engine in enumerate(engines):
        loads = list(dict.fromkeys(r["users"] for r in rows if r["engine"] == engine))
        for style, users in zip(styles, loads, strict=False):
            points = sorted(
                (r for r in rows if (r["engine"], r["users"]) == (engine, users)),
                key=lambda r: r["max_instances"],
            )
            x = [r["max_instances"] for r in points]
            label = f"{users} users"
            axes[0][col].plot(x, [100 * r["goodput_share"] for r in points], style, label=label)
            axes[1][col].plot(x, [r["p95_ms"] / 1000 for r in points], style, label=label)
            axes[2][col].plot(x, [r["dollars_per_hour"] for r in points], style, label=label)
            pick = next(
                (p for p in picks if (p["engine"], p["users"]) == (engine, users) and p["max_instances"]),
                None,
            )
            if pick:
                t, n, busy = zip(*pick["timeline"], strict=True)
                axes[3][col].plot(t, n, style[:-1], label=f"{label}, max {pick['max_instances']}: instances")
                axes[3][col].plot(
                    t, busy, ":", color=axes[3][col].lines[-1].get_color(), label=f"{label}: busy"
                )
        axes[0][col].set(
            title=f"{engine}: goodput (within {points[0]['deadline_s']:.3g} s)",
            ylabel="% of requests",
            ylim=(0, 105),
        )
        axes[1][col].set(title=f"{engine}: p95 of successful requests", ylabel="seconds", yscale="log")
        axes[2][col].set(title=f"{engine}: Cloud Run cost", ylabel="$ per hour", yscale="log")
        axes[3][col].set(
            title=f"{engine}: instances over time at the recommended max", xlabel="seconds", yscale="log"
        )
        for row in range(4):
            if row < 3:
                axes[row][col].set_xscale("log")
                axes[row][col].xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
                axes[row][col].set_xlabel("max_instances")
            axes[row][col].grid(True, alpha=0.3)
            axes[row][col].legend(fontsize=7)
    fig.suptitle("Cloud Run model (concurrency 1): closed-loop users, mean pause 7.4 s", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    overrides = {k: float(v) for k, v in (item.split("=") for item in args.deadline_s.split(",") if item)}
    grid = [int(n) for n in args.max_instances.split(",")]
    print(
        f"{'engine':10} {'users':>6} {'max':>6} {'good':>7} {'good/s':>8} {'p95 ms':>9} {'inst':>8} "
        f"{'peak':>6} {'$/h':>9} {'$/Mchar':>9}"
    )
    rows: list[dict] = []
    event_rows: list[dict] = []
    for profile in profiles(args.bench):
        for users in (int(u) for u in args.users.split(",")):
            rows += sweep(profile, users, grid, deadline_s(profile, overrides), args)
            event_rows += event_sweep(profile, users, grid, args)
    picks = recommend(rows, args.target)
    draw(rows, picks, args.out / "sizing.png")
    for row in rows:  # the recommended points keep theirs
        del row["timeline"]
    summary = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "recommended": picks,
        "managed_tts_per_million_chars": MANAGED_TTS,
        "points": rows,
        # Pub/Sub push at the same offered rate; the last row per engine and load is the first
        # max_instances that meets --target within --event-deadline-s (or the grid's end).
        "events": event_rows,
    }
    (args.out / "sizing.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (args.out / "sizing.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for pick in picks:
        print("# recommended", json.dumps({k: v for k, v in pick.items() if k != "timeline"}))
    print(f"# wrote {args.out / 'sizing.json'}, sizing.csv and sizing.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
