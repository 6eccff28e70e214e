"""The model against the local fleet: run loadtest.run's fleet (N instances behind HAProxy, hibari,
ten-word unique sentences) at N = 1, 2, 4 and two loads each, simulate the same fleet (N warm
instances sharing this machine's cores, HAProxy's bounded queue and timeout, the same Locust-like
users, the service times of a bench.json) and report the model's error on each figure.

    python -m loadtest.capacity.validate --bench loadtest/results/bench-hibari/bench.json

Writes validation.json into --out (and each run's own files under it); prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path

from loadtest import run
from loadtest.capacity.inputs import from_bench
from loadtest.capacity.platform import Service
from loadtest.capacity.scenario import Users, simulate

FIGURES = ("qps", "goodput_rps", "p50_ms", "p95_ms")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "capacity-validation"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", type=Path, required=True, help="bench.json of the engine being served")
    p.add_argument("--instances", default="1,2,4")
    p.add_argument("--users-per-instance", default="2,6", help="loads: users = this x N")
    p.add_argument("--duration", type=int, default=30)
    p.add_argument("--max-queue", type=int, default=2)
    p.add_argument("--queue-timeout", type=float, default=10)
    p.add_argument("--seeds", type=int, default=5, help="simulations per point (their median)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


def error(model: float, measured: float) -> float | None:
    return round((model - measured) / measured, 3) if measured else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profile = from_bench(args.bench, "hibari", memory_gib=2)
    deadline_s = 2 * statistics.median(s for _, s in profile.service)
    rows = []
    for n in (int(i) for i in args.instances.split(",")):
        for per in (int(u) for u in args.users_per_instance.split(",")):
            users = per * n
            out = args.out / f"n{n}-u{users}"
            run.main(
                [
                    "--architectures=fleet",
                    f"--instances={n}",
                    f"--users={users}",
                    f"--duration={args.duration}",
                    "--user-classes=UniqueSentences",
                    f"--deadline-ms={1000 * deadline_s}",
                    f"--max-queue={args.max_queue}",
                    f"--queue-timeout={args.queue_timeout}",
                    f"--out={out}",
                ]
            )
            summary = json.loads((out / "summary.json").read_text())
            (measured,) = summary["steps"]
            service = Service(
                max_instances=n,
                min_instances=n,
                max_pending=args.max_queue * n,
                pending_timeout_s=args.queue_timeout,
                host_cpus=len(summary["machine"]["server_cpus"]),
            )
            runs = [
                simulate(
                    profile.sample,
                    profile.startup_s,
                    service,
                    Users(users),
                    duration_s=measured["window_s"],
                    deadline_s=deadline_s,
                    seed=seed,
                ).row()
                for seed in range(args.seeds)
            ]
            model = {f: statistics.median(r[f] for r in runs) for f in (*FIGURES, "refused", "requests")}
            model["refused_share"] = (
                round(model["refused"] / model["requests"], 4) if model["requests"] else 0
            )
            row = {
                "instances": n,
                "users": users,
                "load_average": summary["machine"]["load_average"],
                "measured": {f: measured[f] for f in FIGURES} | {"refused_share": measured["error_rate"]},
                "model": {f: model[f] for f in (*FIGURES, "refused_share")},
                "relative_error": {f: error(model[f], measured[f]) for f in FIGURES},
            }
            rows.append(row)
            print("# validation", json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "bench": str(args.bench),
        "deadline_s": deadline_s,
        "cpu_count": os.cpu_count(),
        "rows": rows,
        "mean_abs_error": {
            f: round(
                statistics.fmean(
                    abs(r["relative_error"][f]) for r in rows if r["relative_error"][f] is not None
                ),
                3,
            )
            for f in FIGURES
        },
    }
    (args.out / "validation.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'N':>3} {'users':>5} " + " ".join(f"{f + ' meas/model/err':>28}" for f in FIGURES))
    for r in rows:
        cells = [
            f"{r['measured'][f]:>9.1f} {r['model'][f]:>9.1f} {100 * (r['relative_error'][f] or 0):>+7.0f}%"
            for f in FIGURES
        ]
        print(f"{r['instances']:>3} {r['users']:>5} " + " ".join(f"{c:>28}" for c in cells))
    print("# mean |relative error|", json.dumps(report["mean_abs_error"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
