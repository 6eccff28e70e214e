"""The comparison chart: latency percentiles, throughput and errors against concurrent users."""

from __future__ import annotations

from pathlib import Path

from loadtest.stats import Step

COLOURS = {"fleet": "tab:blue", "baseline": "tab:red", "target": "tab:green"}


def draw(steps: list[Step], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, (lat, thr, err) = plt.subplots(1, 3, figsize=(15, 4.5))
    for arch in dict.fromkeys(s.architecture for s in steps):
        rows = sorted((s for s in steps if s.architecture == arch), key=lambda s: s.users)
        users = [s.users for s in rows]
        colour = COLOURS.get(arch)
        for name, style in (("p50_ms", ":"), ("p95_ms", "-"), ("p99_ms", "--")):
            lat.plot(
                users,
                [getattr(s, name) for s in rows],
                style,
                marker="o",
                color=colour,
                label=f"{arch} {name.removesuffix('_ms')}",
            )
        thr.plot(users, [s.qps for s in rows], marker="o", color=colour, label=arch)
        err.plot(users, [100 * s.error_rate for s in rows], marker="o", color=colour, label=arch)
    lat.set(title="Latency of successful requests", xlabel="concurrent users", ylabel="ms", yscale="log")
    thr.set(title="Throughput (successful responses)", xlabel="concurrent users", ylabel="requests / s")
    err.set(title="Errors (incl. quick 503 refusals)", xlabel="concurrent users", ylabel="% of requests")
    for axis in (lat, thr, err):
        axis.set_xscale("log", base=2)
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
