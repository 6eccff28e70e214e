"""Run the function locally exactly as an instance runs in production, and speak a sentence.

Starts functions-framework (one worker, one thread), waits until it is healthy, POSTs the
sentence, prints the response (where the audio landed), then keeps serving until Ctrl-C.
Standard library only, so it runs in the function's own lean virtual environment.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"functions-framework exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    sys.exit(f"{url} not healthy after {timeout_s} s")


def speak(url: str, text: str) -> dict:
    request = urllib.request.Request(
        f"{url}/synthesize",
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("text", nargs="?", default="Hello! This sentence was spoken by serverless T T S.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--once", action="store_true", help="stop after speaking the sentence")
    args = parser.parse_args()

    url = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "THREADS": "1", "WORKERS": "1"}
    command = [
        str(Path(sys.executable).parent / "functions-framework"),
        "--target",
        "synthesize",
        "--source",
        "function/main.py",
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
    ]
    process = subprocess.Popen(command, cwd=REPO, env=env)
    try:
        wait_healthy(url, process)
        result = speak(url, args.text)
        print(json.dumps(result, indent=2), flush=True)
        print(f"\nAudio written to {result['uri']}", flush=True)
        if args.once:
            return
        print(
            f"Serving on {url} (Ctrl-C to stop). Try:\n  curl -s -X POST {url}/synthesize "
            "-H 'Content-Type: application/json' -d '{\"text\": \"Hello again.\"}'",
            flush=True,
        )
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
