"""Child processes that are always stopped: pinned to chosen CPUs, logged to files, health-checked
(``function.local.wait_healthy``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psutil


def require(program: str, install_hint: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise RuntimeError(f"{program} is not installed; {install_hint}")
    return path


class Measured(ABC):
    """Servers a load test started, whatever started them (processes here, containers in
    ``loadtest.containers``): what it reads of them (CPU time, peak memory, which processes are
    still alive) and how it stops them."""

    def __init__(self) -> None:
        self.seen_pids: set[int] = set()

    @abstractmethod
    def root_pids(self) -> list[int]:
        """The host PIDs of the processes started, without their descendants."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every one of them (and their descendants)."""

    def tree(self) -> list[psutil.Process]:
        """Every live process started here, with descendants (gunicorn's worker, for one)."""
        found: list[psutil.Process] = []
        for pid in self.root_pids():
            try:
                parent = psutil.Process(pid)
                found += [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        self.seen_pids.update(p.pid for p in found)
        return found

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.tree():
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total

    def peak_rss_bytes(self) -> list[int]:
        """High-water resident memory (VmHWM) of each live process, from /proc."""
        peaks: list[int] = []
        for process in self.tree():
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) * 1024)
        return peaks

    def alive(self) -> list[int]:
        return [pid for pid in self.seen_pids if psutil.pid_exists(pid) and _not_zombie(pid)]


class ProcessGroup(Measured):
    """Starts processes and stops every one of them on exit, also on Ctrl-C, SIGTERM and errors."""

    def __init__(self, log_dir: Path, cpus: Sequence[int] | None = None) -> None:
        super().__init__()
        self.log_dir = log_dir
        self.cpus = set(cpus) if cpus else None
        self.processes: list[subprocess.Popen] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(
        self, name: str, args: Sequence[str], env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen, Path]:
        log = self.log_dir / f"{name}.log"
        cpus = self.cpus
        with log.open("w") as out:
            process = subprocess.Popen(
                list(args),
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own session: a terminal's Ctrl-C reaches only us, and we stop the children in order.
                start_new_session=True,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
        self.processes.append(process)
        return process, log

    def root_pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def stop(self) -> None:
        self.tree()  # remember descendants before their parents go
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in self.seen_pids:  # orphans whose parent died first
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                continue

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``with``/``finally`` blocks stop the children (Ctrl-C
    already raises KeyboardInterrupt)."""

    def _raise_exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise_exit)
