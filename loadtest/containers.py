"""The production image (built by tests/image/build.sh), run as Cloud Run starts it: a non-root
user, a read-only root file system with a writable in-memory /tmp, the port in PORT, the target in
FUNCTION_TARGET, and SIGTERM when the instance is shut down. The container shares the host's
network, so it reaches fake-gcs-server on loopback and the tests reach it on the port given."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import requests

from function.config import HEALTH_ROUTE
from function.local import REPO, free_port
from loadtest.processes import Measured

BUILD = REPO / "tests" / "image" / "build.sh"  # the build recipe lives beside the tests that run it
# Written by base.sh: runc, cgroupfs and the ulimits this machine allows.
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "build" / "image" / "containers.conf")}
# A cold build on 2 vCPUs took ~2 min (plus ~1 min for the base, once per machine); this bounds a
# registry that stalls.
BUILD_TIMEOUT_S = 1200


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=PODMAN_ENV, capture_output=True, text=True, timeout=timeout, check=check
    )


def build(engines: str = "hibari,kokoro", *options: str) -> str:
    """The image for ``engines`` (built, or taken from podman's layer cache), by name; ``options``
    go to ``podman build``."""
    done = subprocess.run(
        ["bash", str(BUILD), engines, *options], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S + 60
    )
    assert done.returncode == 0, f"image build failed:\n{done.stderr[-6000:]}"
    return done.stdout.strip().splitlines()[-1]


class Container:
    """One instance of the image: `podman run` as Cloud Run would start it."""

    def __init__(
        self,
        image: str,
        target: str = "synthesize",
        *,
        cpus: float | None = None,
        volumes: Sequence[str] = (),
        **env: str,
    ) -> None:
        """``cpus``: the CPU time the container may use (``--cpus``: a CFS quota, as Cloud Run's
        vCPU limit), unlimited when None; ``volumes``: ``host:container`` bind mounts."""
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = f"tts-test-{uuid.uuid4().hex[:12]}"
        settings = {"PORT": str(self.port), "FUNCTION_TARGET": target, **env}
        self.started = time.monotonic()
        podman(
            "run", "--detach", "--name", self.name, "--network=host",
            # Cloud Run's file system for the code: read-only, /tmp the one writable place. Only
            # /tmp: podman would otherwise mount tmpfs on /run and /var/tmp as well.
            "--read-only", "--read-only-tmpfs=false", "--tmpfs=/tmp:rw,mode=1777,size=512m",
            *([f"--cpus={cpus}"] if cpus else []),
            *(f"--volume={volume}" for volume in volumes),
            *(f"--env={key}={value}" for key, value in settings.items()),
            image,
        )  # fmt: skip

    def wait_healthy(self, timeout_s: float = 60) -> requests.Response:
        """The first answer of the startup probe's route (an event target answers GET with 405)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                response = requests.get(f"{self.url}{HEALTH_ROUTE}", timeout=2)
            except requests.ConnectionError:
                if not self.running():
                    raise RuntimeError(f"{self.name} exited:\n{self.logs()[-4000:]}") from None
                time.sleep(0.05)
                continue
            if response.status_code in (200, 405):
                return response
        raise TimeoutError(f"{self.name} not healthy after {timeout_s} s:\n{self.logs()[-4000:]}")

    def running(self) -> bool:
        return podman("inspect", "--format={{.State.Running}}", self.name).stdout.strip() == "true"

    def exec(self, *command: str, user: str = "") -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the container, as the image's user or as ``user``."""
        return podman("exec", *([f"--user={user}"] if user else []), self.name, *command, check=False)

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def terminate(self, grace_s: int = 30) -> int:
        """SIGTERM, as Cloud Run stops an instance; SIGKILL after ``grace_s``. The exit code."""
        podman("stop", f"--time={grace_s}", self.name, timeout=grace_s + 30)
        return int(podman("inspect", "--format={{.State.ExitCode}}", self.name).stdout)

    def remove(self) -> None:
        podman("rm", "--force", "--time=0", self.name, check=False)

    def host_pid(self) -> int | None:
        """The host PID of the container's first process, None once it has stopped."""
        done = podman("inspect", "--format={{.State.Pid}}", self.name, check=False)
        pid = int(done.stdout.strip() or 0) if done.returncode == 0 else 0
        return pid or None


class ContainerGroup(Measured):
    """Containers a load test starts (``loadtest.deployments.start_container_fleet``), read and
    stopped like its processes: their processes are the host's, seen through the container's PID."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        self.log_dir = log_dir
        self.containers: list[Container] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, image: str, cpus: float | None, volumes: Sequence[str], **env: str) -> Container:
        container = Container(image, cpus=cpus, volumes=volumes, **env)
        self.containers.append(container)
        return container

    def root_pids(self) -> list[int]:
        return [pid for container in self.containers if (pid := container.host_pid())]

    def stop(self) -> None:
        self.tree()  # remember the processes, so alive() can tell that they are gone
        for container in self.containers:
            (self.log_dir / f"{container.name}.log").write_text(container.logs())
            container.remove()
