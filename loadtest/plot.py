"""The comparison chart against concurrent users: goodput under the deadline (the headline), its
share of all requests, latency of the successful requests, and refusals/errors."""

from __future__ import annotations

from pathlib import Path

from loadtest.stats import Step

COLOURS = {
    "fleet": "tab:blue",
    "container-fleet": "tab:purple",
    "baseline": "tab:red",
    "bounded-pool": "tab:orange",
    "target": "tab:green",
}
# Each percentile its own line style and marker, so p95 and p99 stay apart in the legend and in print.
PERCENTILES = (("p50_ms", ":", "o"), ("p95_ms", "-", "s"), ("p99_ms", "--", "^"))


def draw(steps: list[Step], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, (good, share, lat, err) = plt.subplots(1, 4, figsize=(19, 4.5))
    for arch in dict.fromkeys(s.architecture for s in steps):
        rows = sorted((s for s in steps if s.architecture == arch), key=lambda s: s.users)
        users = [s.users for s in rows]
        colour = COLOURS.get(arch)
        good.plot(
            users, [s.goodput_rps for s in rows], "-", marker="o", color=colour, label=f"{arch} in time"
        )
        good.plot(
            users, [s.qps for s in rows], ":", marker="x", color=colour, alpha=0.6, label=f"{arch} any time"
        )
        share.plot(users, [100 * s.goodput_share for s in rows], marker="o", color=colour, label=arch)
        for name, style, marker in PERCENTILES:
            lat.plot(
                users,
                [getattr(s, name) for s in rows],
                style,
                marker=marker,
                color=colour,
                label=f"{arch} {name.removesuffix('_ms')}",
            )
        err.plot(users, [100 * s.error_rate for s in rows], marker="o", color=colour, label=arch)
    good.set(
        title="Goodput: successful within the deadline", xlabel="concurrent users", ylabel="requests / s"
    )
    share.set(
        title="Share of requests good (refused, late = failed)",
        xlabel="concurrent users",
        ylabel="% of requests",
        ylim=(0, 105),
    )
    lat.set(title="Latency of successful requests", xlabel="concurrent users", ylabel="ms", yscale="log")
    err.set(title="Errors (incl. quick 503 refusals)", xlabel="concurrent users", ylabel="% of requests")
    for axis in (good, share, lat, err):
        axis.set_xscale("log", base=2)
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
