"""The two architectures under test, started on 127.0.0.1 with the same CPUs and engine threads.

fleet:    N functions-framework processes (one worker, one thread: one request at a time, as
          Cloud Run with concurrency=1) behind HAProxy, ``maxconn 1`` per instance, a bounded
          queue and a queue timeout like Cloud Run's pending-request queue.
container-fleet: the same with containers of the production image (``--cpus`` each, as Cloud Run
          limits an instance's vCPU) as the instances.
baseline: one process, FastAPI + uvicorn, requests handed to a thread pool (``loadtest.baseline``),
          its queue unbounded as in the guide; bounded-pool: the same with the fleet's bounded
          queue and queue timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from function.local import ONE_AT_A_TIME, free_port, health_url, serve_command, wait_healthy
from loadtest.containers import ContainerGroup
from loadtest.processes import Measured, ProcessGroup, require

HAPROXY_HINT = "install it with: apt-get update && apt-get install -y haproxy"


@dataclass
class Deployment:
    name: str
    url: str
    servers: Measured
    proxy: ProcessGroup | None = None
    instance_urls: list[str] = field(default_factory=list)

    def groups(self) -> list[Measured]:
        return [self.servers] + ([self.proxy] if self.proxy else [])

    def alive(self) -> list[int]:
        return [pid for group in self.groups() for pid in group.alive()]

    def stop(self) -> None:
        for group in reversed(self.groups()):
            group.stop()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def engine_env(output_dir: Path, engine_threads: int) -> dict[str, str]:
    # Everything else (TTS_ENGINES, TTS_MODEL_DIR, ...) passes through from the caller's environment.
    return {"TTS_OUTPUT_URI": str(output_dir), "TTS_THREADS": str(engine_threads), "TTS_LOG_LEVEL": "WARNING"}


def warm(url: str, timeout_s: float = 300) -> None:
    """One synthesis, so the model load (cold start) stays out of the steady-state figures; a text
    never seen before, as a cache hit (from a shared folder) would not load the model."""
    request = urllib.request.Request(
        f"{url}/synthesize",
        data=json.dumps({"text": f"Warm up number {time.time_ns()}."}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()


def start_instance(group: ProcessGroup, name: str, env: dict[str, str]) -> tuple[str, subprocess.Popen, Path]:
    port = free_port()
    process, log = group.start(name, serve_command("synthesize", port), {**ONE_AT_A_TIME, **env})
    return f"http://127.0.0.1:{port}", process, log


REFUSED = json.dumps({"error": {"code": "overloaded", "message": "all instances busy, queue full"}})
THROTTLED = json.dumps(
    {
        "error": {
            "code": "rate_limited",
            "type": "rate_limit_error",
            "message": "too many requests for this key",
        }
    }
)


@dataclass(frozen=True)
class RateLimit:
    """Requests one caller may make per window (Cloud Armor's throttle in terraform/lb.tf)."""

    requests: int
    window_s: int


def rate_limit_rules(limit: RateLimit) -> str:
    """HAProxy's per-caller limit: a stick table keyed like the Cloud Armor rules (X-API-Key, else
    Authorization, else the client IP), holding SHA-256 digests rather than keys; 429 beyond."""
    window, caller, found = limit.window_s, "var(txn.caller)", "var(txn.caller) -m found"
    lines = [
        f"stick-table type string len 72 size 100k expire {window}s store http_req_rate({window}s)",
        "http-request set-var(txn.caller) req.hdr(x-api-key),sha2(256),hex"
        " if { req.hdr(x-api-key) -m found }",
        "http-request set-var(txn.caller) req.hdr(authorization),sha2(256),hex"
        f" if !{{ {found} }} {{ req.hdr(authorization) -m found }}",
        f'http-request set-var-fmt(txn.caller) "ip:%[src]" if !{{ {found} }}',
        f"http-request track-sc0 {caller}",
        f"http-request return status 429 content-type application/json string '{THROTTLED}'"
        f" hdr Retry-After {window} if {{ sc_http_req_rate(0) gt {limit.requests} }}",
    ]
    return "".join(f"    {line}\n" for line in lines)


def haproxy_config(
    port: int,
    instance_urls: Sequence[str],
    max_queue: int,
    queue_timeout_s: float,
    per_caller: RateLimit | None = None,
) -> str:
    servers = "\n".join(
        f"    server i{i} {url.removeprefix('http://')} maxconn 1 maxqueue {max_queue}"
        for i, url in enumerate(instance_urls)
    )
    total_queue = max_queue * len(instance_urls)
    limits = rate_limit_rules(per_caller) if per_caller else ""
    return f"""global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    # Receive each request whole before it takes an instance (a half-sent or idle connection
    # would hold the one worker), as Cloud Run's front end does; give up on it after 10 s.
    option http-buffer-request
    timeout http-request 10s
    timeout queue {int(queue_timeout_s * 1000)}ms
frontend tts
    bind 127.0.0.1:{port}
{limits}    # Refuse at once when the pending queue is full, as Cloud Run does when it cannot scale further.
    http-request return status 503 content-type application/json string '{REFUSED}' \
        hdr Retry-After 1 if {{ queue(fleet) ge {total_queue} }}
    default_backend fleet
backend fleet
    balance leastconn
{servers}
"""


def start_fleet(
    instances: int,
    output_dir: Path,
    log_dir: Path,
    cpus: Sequence[int] | None,
    max_queue: int,
    queue_timeout_s: float,
    engine_threads: int = 1,
    per_caller: RateLimit | None = None,
) -> Deployment:
    haproxy = require("haproxy", HAPROXY_HINT)
    servers = ProcessGroup(log_dir / "fleet", cpus)
    proxy = ProcessGroup(log_dir / "fleet", cpus)
    deployment = Deployment("fleet", "", servers, proxy)
    try:
        started = [
            start_instance(servers, f"instance-{i}", engine_env(output_dir, engine_threads))
            for i in range(instances)
        ]
        for url, process, log in started:
            wait_healthy(health_url(url), process, log=log)
            warm(url)
        deployment.instance_urls = [url for url, _, _ in started]
        front(deployment, proxy, haproxy, max_queue, queue_timeout_s, per_caller)
    except BaseException:
        deployment.stop()
        raise
    return deployment


def start_container_fleet(
    instances: int,
    image: str,
    output_dir: Path,
    log_dir: Path,
    cpus_per_instance: float,
    max_queue: int,
    queue_timeout_s: float,
    engine_threads: int = 1,
) -> Deployment:
    """The fleet as containers of the production image (``loadtest.containers``), each limited to
    ``cpus_per_instance`` of CPU time as Cloud Run limits an instance's vCPU, behind the same
    HAProxy. They share ``output_dir`` (mounted as their bucket) like the process fleet; the image
    brings its own engines and models (the caller's TTS_* settings do not reach it)."""
    haproxy = require("haproxy", HAPROXY_HINT)
    servers = ContainerGroup(log_dir / "container-fleet")
    proxy = ProcessGroup(log_dir / "container-fleet")
    deployment = Deployment("container-fleet", "", servers, proxy)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        output_dir.chmod(0o777)  # the image's runtime user (not root) writes the audio
        env = {**engine_env(Path("/audio"), engine_threads), "PYTHONUNBUFFERED": "1"}
        started = [
            servers.start(image, cpus_per_instance, [f"{output_dir}:/audio"], **env) for _ in range(instances)
        ]
        for container in started:
            container.wait_healthy(timeout_s=300)
            warm(container.url)
        deployment.instance_urls = [container.url for container in started]
        front(deployment, proxy, haproxy, max_queue, queue_timeout_s)
    except BaseException:
        deployment.stop()
        raise
    return deployment


def front(
    deployment: Deployment,
    proxy: ProcessGroup,
    haproxy: str,
    max_queue: int,
    queue_timeout_s: float,
    per_caller: RateLimit | None = None,
) -> None:
    """HAProxy in front of the deployment's instances (``haproxy_config``), healthy: its URL."""
    port = free_port()
    config = proxy.log_dir / "haproxy.cfg"
    config.write_text(haproxy_config(port, deployment.instance_urls, max_queue, queue_timeout_s, per_caller))
    process, log = proxy.start("haproxy", [haproxy, "-db", "-f", str(config)])
    deployment.url = f"http://127.0.0.1:{port}"
    wait_healthy(health_url(deployment.url), process, log=log)


def start_baseline(
    workers: int,
    output_dir: Path,
    log_dir: Path,
    cpus: Sequence[int] | None,
    engine_threads: int = 1,
    max_queue: int | None = None,
    queue_timeout_s: float = 10,
) -> Deployment:
    """The thread pool; ``max_queue`` None leaves its queue unbounded (the guide's "baseline"),
    else it is the "bounded-pool"."""
    name = "baseline" if max_queue is None else "bounded-pool"
    servers = ProcessGroup(log_dir / name, cpus)
    deployment = Deployment(name, "", servers)
    try:
        port = free_port()
        args = [sys.executable, "-m", "loadtest.baseline", f"--port={port}", f"--workers={workers}"]
        if max_queue is not None:
            args += [f"--max-queue={max_queue}", f"--queue-timeout={queue_timeout_s}"]
        process, log = servers.start(name, args, engine_env(output_dir, engine_threads))
        deployment.url = f"http://127.0.0.1:{port}"
        deployment.instance_urls = [deployment.url]
        wait_healthy(health_url(deployment.url), process, log=log)
        warm(deployment.url)
    except BaseException:
        deployment.stop()
        raise
    return deployment
