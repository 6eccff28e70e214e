"""Run the function locally exactly as an instance runs in production, and speak a sentence.

Starts functions-framework (one worker, one thread), waits until it is healthy, POSTs the
sentence, prints the response (where the audio landed), then keeps serving until Ctrl-C.
Standard library and the function's own package only (``function.local``), so it runs in the
function's own lean virtual environment.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request

from function.local import ONE_AT_A_TIME, REPO, health_url, serve_command, wait_healthy


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
    env = {**os.environ, **ONE_AT_A_TIME}
    process = subprocess.Popen(serve_command("synthesize", args.port), cwd=REPO, env=env)
    try:
        try:
            wait_healthy(health_url(url), process)
        except (RuntimeError, TimeoutError) as exc:
            sys.exit(str(exc))
        result = speak(url, args.text)
        print(json.dumps(result, indent=2), flush=True)
        print(f"\nAudio written to {result['uri']}", flush=True)
        if args.once:
            return
        print(
            f"Serving on {url} (Ctrl-C to stop). Try:\n  curl -s -X POST {url}/synthesize "
            "-H 'Content-Type: application/json' -d '{\"text\": \"Hello again.\"}'\n"
            f"or open {url}/ in a browser (the page to try voices; TTS_PAGE=false turns it off)",
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
