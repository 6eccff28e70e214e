"""The load test's fleet made of containers of the production image (loadtest/deployments.py,
``start_container_fleet``): each instance limited to one CPU as Cloud Run limits a vCPU, behind the
same HAProxy as the process fleet, sharing one bucket folder, all of it stopped at the end."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

from loadtest.containers import Container, ContainerGroup, podman
from loadtest.deployments import start_container_fleet
from tests.test_loadtest_smoke import alive, run_loadtest

# A busy loop in two processes for this long: with a one-CPU limit they get about one CPU-second
# per second between them, where the host's two vCPUs would give them two.
SPIN_S = 2.0
SPIN = f"""
import multiprocessing, os, time
def spin():
    end = time.monotonic() + {SPIN_S}
    while time.monotonic() < end:
        pass
workers = [multiprocessing.Process(target=spin) for _ in range(2)]
for w in workers: w.start()
for w in workers: w.join()
print(os.times().children_user + os.times().children_system)
"""


def cpu_quota(container: Container) -> float:
    """The container's CFS quota in CPUs, read inside it (cgroup v2's cpu.max, or v1's files)."""
    v2 = container.exec("cat", "/sys/fs/cgroup/cpu.max")
    if v2.returncode == 0:
        quota, period = v2.stdout.split()
    else:
        quota = container.exec("cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us").stdout
        period = container.exec("cat", "/sys/fs/cgroup/cpu/cpu.cfs_period_us").stdout
    return float("inf") if quota.strip() in ("max", "-1") else int(quota) / int(period)


def container_cpu_s(container: Container) -> float:
    pid = container.host_pid()
    assert pid is not None, f"{container.name} is not running"
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def test_container_fleet_limits_each_instance_to_one_cpu_and_serves_through_haproxy(
    image: str, tmp_path: Path
) -> None:
    audio = tmp_path / "audio"
    with start_container_fleet(
        2, image, audio, tmp_path / "logs", 1.0, max_queue=2, queue_timeout_s=30
    ) as fleet:
        assert isinstance(fleet.servers, ContainerGroup)
        containers = fleet.servers.containers
        assert len(containers) == 2 and len(fleet.instance_urls) == 2
        for container in containers:
            assert cpu_quota(container) == 1.0
        spun = containers[0].exec("python3", "-c", SPIN)
        assert spun.returncode == 0, spun.stderr
        # Two spinning processes on a host with two vCPUs: about 1 CPU-second per second with the
        # limit (a quiet host would give ~2 without it).
        assert float(spun.stdout) <= 1.25 * SPIN_S

        # Two requests at once through HAProxy (maxconn 1 per instance): one on each instance.
        before = [container_cpu_s(c) for c in containers]
        texts = [f"Request {n} of the container fleet test, at {time.time_ns()}." for n in range(2)]
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda t: requests.post(f"{fleet.url}/synthesize", json={"text": t}, timeout=120), texts
                )
            )
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        spent = [container_cpu_s(c) - b for c, b in zip(containers, before, strict=True)]
        assert min(spent) > 0.02, f"an instance did no synthesis: CPU seconds {spent}"
        stored = {a.json()["object"] for a in answers}
        assert {p.name for p in audio.iterdir()} >= stored  # the shared bucket folder holds both
        assert fleet.servers.cpu_seconds() > 0 and all(r > 50 * 2**20 for r in fleet.servers.peak_rss_bytes())
        names = [c.name for c in containers]
    assert not fleet.alive()
    listed = podman("ps", "--all", "--format={{.Names}}").stdout.split()
    assert not set(names) & set(listed)
    assert all((tmp_path / "logs" / "container-fleet" / f"{name}.log").exists() for name in names)


def test_load_test_runs_the_container_fleet_beside_the_process_fleet(image: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = run_loadtest(
        "--architectures",
        "container-fleet,fleet",
        "--image",
        image,
        "--users",
        "2",
        "--duration",
        "3",
        "--max-requests",
        "20",
        "--calibration-samples",
        "1",
        "--out",
        str(out),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    steps = {s["architecture"]: s for s in summary["steps"]}
    assert set(steps) == {"container-fleet", "fleet"}
    for step in steps.values():
        assert 0 < step["ok"] <= step["requests"] <= 20 and step["cpu_s"] > 0
    assert "goodput_rps_container-fleet_over_fleet" in summary["ratios"][0]
    assert summary["peak_rss_mib"]["container-fleet"] > 50
    assert not [pid for pid in summary["started_pids"] if alive(pid)]
