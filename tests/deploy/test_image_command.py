"""The image's start command, run here with the image's environment: it serves the target named by
FUNCTION_TARGET on PORT with one gunicorn worker, and answers the startup probe's route.

No docker here, so the source tree stands in for /app (the Dockerfile's WORKDIR and PYTHONPATH)
and this venv for /opt/venv; everything else is the Dockerfile's own CMD and ENV.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from function.local import free_port
from tests.deploy import iac


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture(params=["synthesize", "synthesize_event"])
def image_process(request, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    image_env = iac.dockerfile().envs
    port = free_port()
    env = {
        **os.environ,
        **image_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(iac.ROOT),
        "PORT": str(port),
        "FUNCTION_TARGET": request.param,
    }
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        json.loads(iac.dockerfile().cmd), cwd=iac.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    yield process, f"http://127.0.0.1:{port}", request.param
    process.terminate()
    process.wait(timeout=10)
    log.close()


def test_the_start_command_serves_the_target_from_the_environment(image_process) -> None:
    process, url, target = image_process
    deadline = time.monotonic() + 30
    response = None
    while time.monotonic() < deadline and response is None:
        assert process.poll() is None, "the start command exited"
        try:
            response = requests.get(f"{url}{iac.unquote(iac.locals_()['health_route'])}", timeout=2)
        except requests.ConnectionError:
            time.sleep(0.1)
    assert response is not None, "nothing listened on PORT"
    if target == "synthesize":
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        assert response.json()["model_loaded"] is False  # the probe never loads the model
    else:
        # A CloudEvent function takes POST only: the 405 shows the event target is the one served.
        assert response.status_code == 405
    # gunicorn master plus exactly one worker (WORKERS=1); watched for a second, because a master
    # starts its workers one after another and the first may already be answering.
    workers = set()
    for _ in range(10):
        workers.update(children(process.pid))
        time.sleep(0.1)
    assert len(workers) == 1
