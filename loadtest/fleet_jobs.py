"""Long documents as jobs on a local fleet: completion time with N event instances against one
instance doing the whole document, alternated, and every part's service time for the capacity model.

For each round and document size, in an order that rotates every round:

- ``whole``: one event instance synthesizes the whole document as a single event (the limits raised
  so that it may), as the event path would without jobs;
- ``N=1,2,4``: ``POST /jobs`` to an HTTP instance whose push loop (``TTS_JOBS_PUSH_URLS``) delivers
  the parts to N event instances, one part at a time each (Cloud Run, concurrency 1); completion is
  the time until ``GET /jobs/<id>`` says succeeded.

Each configuration gets fresh processes, warmed with one short synthesis (the model load stays out,
as on a warm fleet), a fresh output folder (no cache hits from earlier runs) and a fresh document
(no two sentences alike: no part is a cache hit of another). One engine thread per instance.

    python -m loadtest.fleet_jobs --chars 10000,100000 --instances 1,2,4 --rounds 2

Writes ``loadtest/results/jobs-parts.jsonl`` (one object per synthesized part: engine, chars,
service_s, cold, cpu, instances: what the capacity model reads) and ``jobs-<engine>.json`` (every
run), and prints a table with the cost of each job at Cloud Run's prices (docs/jobs.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from function.local import ONE_AT_A_TIME, cpu_model, free_port, health_url, serve_command, wait_healthy
from loadtest.processes import ProcessGroup
from loadtest.texts import paragraph

RESULTS = Path(__file__).resolve().parent / "results"
PARTS_FILE = RESULTS / "jobs-parts.jsonl"
# Cloud Run, request-based billing, Tier 1 (https://cloud.google.com/run/pricing; the table in
# docs/kokoro.md#cost): per vCPU-second, per GiB-second, per request.
PRICE_VCPU_S = 0.000024
PRICE_GIB_S = 0.0000025
PRICE_REQUEST = 0.40 / 1_000_000
# The event service's size in Terraform for these engines (1 vCPU per instance here: one thread).
INSTANCE_VCPU = 1
INSTANCE_GIB = {"hibari": 2, "kokoro": 3}
MANDARIN_CLAUSES = (
    "今天的天气非常好",
    "我们一起去公园散步",
    "图书馆里有很多新书",
    "他每天早上都会喝一杯咖啡",
    "这座城市的夜景很美",
    "孩子们在操场上踢足球",
    "火车将在十分钟后到站",
    "她正在学习弹钢琴",
)


def document(chars: int, language: str, seed: int) -> str:
    """About ``chars`` characters in paragraphs, no sentence repeated (numbered, or drawn at random)."""
    rng = random.Random(seed)
    paragraphs: list[str] = []
    total = 0
    while total < chars:
        if language == "zh":
            text = "".join(
                f"第{seed}卷第{len(paragraphs)}段，{rng.choice(MANDARIN_CLAUSES)}。" for _ in range(6)
            )
        else:
            text = paragraph(60, rng)
        paragraphs.append(text)
        total += len(text) + 1
    return "\n".join(paragraphs)[:chars]


@contextmanager
def instances(
    group_dir: Path, target: str, count: int, env: dict[str, str]
) -> Iterator[tuple[ProcessGroup, list[str]]]:
    group = ProcessGroup(group_dir)
    urls: list[str] = []
    try:
        for n in range(count):
            port = free_port()
            process, log = group.start(f"{target}-{n}", serve_command(target, port), {**ONE_AT_A_TIME, **env})
            url = f"http://127.0.0.1:{port}"
            healthy = (200, 405) if target == "synthesize_event" else (200,)
            wait_healthy(health_url(url), process, 120, log, healthy)
            urls.append(url)
        yield group, urls
    finally:
        group.stop()


def push_body(data: dict[str, Any]) -> bytes:
    message = {"data": base64.b64encode(json.dumps(data).encode()).decode(), "messageId": str(time.time_ns())}
    return json.dumps({"message": message, "subscription": "projects/local/subscriptions/bench"}).encode()


def post(url: str, body: bytes, timeout_s: float = 3600) -> dict[str, Any]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        raw = response.read()
        return json.loads(raw) if response.headers.get_content_type() == "application/json" else {}


def warm_events(urls: list[str], language: str) -> None:
    """Load each instance's model with a text of its own (a shared one would be a cache hit)."""
    for n, url in enumerate(urls):
        text = f"你好，这是第{n}号实例。" if language == "zh" else f"Warm up number {n}, {time.time_ns()}."
        post(f"{url}/projects/local/topics/bench", push_body({"text": text}))


def run_whole(text: str, language: str, env: dict[str, str], work: Path) -> dict[str, Any]:
    """One event instance, the whole document as one event (limits raised so that it may)."""
    whole_env = {**env, "TTS_MAX_EVENT_CHARS": str(len(text) + 1), "TTS_SECONDS_PER_CHAR": "0.000001"}
    with instances(work / "logs", "synthesize_event", 1, whole_env) as (group, urls):
        warm_events(urls, language)
        cpu_before = group.cpu_seconds()
        started = time.perf_counter()
        post(f"{urls[0]}/projects/local/topics/bench", push_body({"text": text, "job_id": "whole"}))
        elapsed = time.perf_counter() - started
        cpu = group.cpu_seconds() - cpu_before
    manifest = json.loads((Path(env["TTS_OUTPUT_URI"]) / "jobs" / "whole.json").read_text())
    assert manifest["status"] == "succeeded", manifest
    return {"completion_s": elapsed, "cpu_s": cpu, "parts": 1, "duration_s": manifest["duration_s"]}


def run_job(text: str, language: str, count: int, env: dict[str, str], work: Path) -> dict[str, Any]:
    """``POST /jobs`` with ``count`` event instances behind the push loop."""
    with instances(work / "logs", "synthesize_event", count, env) as (group, urls):
        warm_events(urls, language)
        front_env = {**env, "TTS_JOBS_PUSH_URLS": ",".join(urls)}
        with instances(work / "front-logs", "synthesize", 1, front_env) as (_, fronts):
            cpu_before = group.cpu_seconds()
            started = time.perf_counter()
            accepted = post(f"{fronts[0]}/jobs", json.dumps({"text": text}).encode())
            status = poll(f"{fronts[0]}/jobs/{accepted['job_id']}")
            elapsed = time.perf_counter() - started
            cpu = group.cpu_seconds() - cpu_before
    assert status["status"] == "succeeded", status
    out = Path(env["TTS_OUTPUT_URI"]) / "jobs" / accepted["job_id"] / "parts"
    parts = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    return {
        "completion_s": elapsed,
        "cpu_s": cpu,
        "parts": accepted["parts"],
        "duration_s": status["duration_s"],
        "part_records": parts,
        "service_s": sum(p["service_s"] for p in parts),
    }


def poll(url: str) -> dict[str, Any]:
    while True:
        with urllib.request.urlopen(url, timeout=30) as response:
            status = json.loads(response.read())
        if status["status"] != "running":
            return status
        time.sleep(0.2)


def cost(run: dict[str, Any], engine: str) -> float:
    """The instances' CPU seconds as billed instance time at Cloud Run's prices, plus one request per
    part and the POST. On Cloud Run each instance has its own vCPU, so a single-threaded part keeps
    its instance busy for about its CPU time; here the instances share two cores with everything
    else on the machine, and their wall-clock service times would bill the waiting too."""
    per_s = INSTANCE_VCPU * PRICE_VCPU_S + INSTANCE_GIB.get(engine, 4) * PRICE_GIB_S
    return run["cpu_s"] * per_s + (run["parts"] + 1) * PRICE_REQUEST


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="hibari", choices=["hibari", "kokoro"])
    parser.add_argument("--chars", default="10000,100000")
    parser.add_argument("--instances", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--part-chars", type=int, default=2000)
    parser.add_argument("--no-whole", action="store_true", help="skip the one-instance whole-document runs")
    parser.add_argument("--append", action="store_true", help="append to the results files")
    args = parser.parse_args()

    language = "zh" if args.engine == "kokoro" else "en"
    configs = ([] if args.no_whole else ["whole"]) + [int(n) for n in args.instances.split(",")]
    cpu = cpu_model()
    RESULTS.mkdir(exist_ok=True)
    runs_file = RESULTS / f"jobs-{args.engine}.json"
    appended = args.append and runs_file.exists()
    runs: list[dict[str, Any]] = json.loads(runs_file.read_text()) if appended else []
    with PARTS_FILE.open("a" if args.append else "w") as parts_out:
        for round_ in range(args.rounds):
            for chars in [int(c) for c in args.chars.split(",")]:
                order = configs[round_ % len(configs) :] + configs[: round_ % len(configs)]
                for config in order:
                    seed = round_ * 1000 + chars + (0 if config == "whole" else int(config))
                    text = document(chars, language, seed)
                    load = os.getloadavg()[0]
                    with tempfile.TemporaryDirectory(prefix="fleet-jobs-") as tmp:
                        work = Path(tmp)
                        env = {
                            "TTS_OUTPUT_URI": str(work / "out"),
                            "TTS_ENGINES": args.engine,
                            "TTS_THREADS": "1",
                            "TTS_LOG_LEVEL": "WARNING",
                            "TTS_JOB_PART_CHARS": str(args.part_chars),
                        }
                        if config == "whole":
                            run = run_whole(text, language, env, work)
                        else:
                            run = run_job(text, language, config, env, work)
                    for part in run.pop("part_records", []):
                        if part["cached"]:
                            continue
                        record = {
                            "engine": args.engine,
                            "chars": part["chars"],
                            "service_s": part["service_s"],
                            "cold": part["cold"],
                            "cpu": cpu,
                            "instances": config,
                        }
                        parts_out.write(json.dumps(record) + "\n")
                    run |= {"engine": args.engine, "chars": len(text), "config": config, "round": round_}
                    run |= {"load_avg_1m": load, "cost_usd": cost(run, args.engine), "cpu": cpu}
                    runs.append(run)
                    print(
                        f"{args.engine} {len(text):>7} chars {config!s:>5}: {run['completion_s']:7.1f} s, "
                        f"{run['parts']:>3} parts, CPU {run['cpu_s']:6.1f} s, ${run['cost_usd']:.5f}, "
                        f"load {load:.2f}",
                        flush=True,
                    )
                    # After every run: a long session cut short keeps what it measured.
                    runs_file.write_text(json.dumps(runs, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
