"""Running this function on this machine as an instance runs in production: functions-framework,
one worker, one thread (one request at a time), on a free loopback port, waited for until healthy.

Not used by the function itself: the one home of these helpers for ``scripts/run_local.py``, the
tests and the load tests. It lives in the package (standard library only) so that a script run in
the function's own lean environment imports it without editing ``sys.path``.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Collection
from pathlib import Path

from function.config import HEALTH_ROUTE

PACKAGE = Path(__file__).resolve().parent
# What functions-framework loads (--source).
SOURCE = PACKAGE / "main.py"
# The source checkout, for tools that run from one (tests, load tests, scripts).
REPO = PACKAGE.parent
FUNCTIONS_FRAMEWORK = Path(sys.executable).parent / "functions-framework"
# One request at a time per instance, as Cloud Run runs it with concurrency 1.
ONE_AT_A_TIME = {"THREADS": "1", "WORKERS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(target: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """functions-framework serving ``target`` (with ``ONE_AT_A_TIME`` in its environment)."""
    return [
        str(FUNCTIONS_FRAMEWORK),
        f"--target={target}",
        f"--source={SOURCE}",
        f"--host={host}",
        f"--port={port}",
    ]


def wait_healthy(
    url: str,
    process: subprocess.Popen,
    timeout_s: float = 60,
    log: Path | None = None,
    healthy: Collection[int] = (200,),
) -> None:
    """Poll ``url`` until it answers with a status in ``healthy``. Raises RuntimeError when the
    process exits first, TimeoutError when time runs out (with the end of ``log``, if given)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited {process.returncode}{_tail(log)}")
        if _status(url) in healthy:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{url} not healthy after {timeout_s} s{_tail(log)}")


def health_url(base_url: str) -> str:
    return f"{base_url}{HEALTH_ROUTE}"


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _tail(log: Path | None) -> str:
    return f"; log:\n{log.read_text(errors='replace')[-3000:]}" if log is not None else ""


def cpu_model() -> str:
    """The CPU's model name, which every benchmark figure is reported next to."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
