"""Time to first sound in a browser: the page (``GET /``) playing a stream through the Web Audio API,
against the same kind of stream read by a plain HTTP client (not a test).

    flock /tmp/bench.lock .venv/bin/python -m loadtest.bench_page [--trials 5] [--sentences 3]
        [--out loadtest/results/bench_page.json]

One Kokoro instance (one worker, one thread, as in production), warmed up first; Debian's headless
Chromium (tests/browser.py) with the page loaded once. Each trial sends, in alternating order, a
Mandarin text never asked before (no cache hits) of ``--sentences`` sentences:

* client: ``POST /synthesize`` with ``"stream": true`` (wav) read by http.client on loopback: the
  first body byte and the last (loadtest/bench_streaming.py's ``post``);
* page: the page speaks it (wav, played through Web Audio as it streams) and reports its own
  figures: first byte, first sound (when the first scheduled sample is heard) and last byte.

The page's first byte against the client's is what the browser and the page add; first sound
against first byte is the page's scheduling; last byte against first sound is how long the
listener already hears speech while the rest is synthesized. Medians over ``--trials``; every
trial records the load average at its start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from function.local import cpu_model, health_url, wait_healthy
from loadtest.bench_streaming import post, text
from loadtest.deployments import start_instance, warm
from loadtest.processes import ProcessGroup, exit_on_sigterm
from loadtest.run import DEFAULT_OUT
from tests.browser import load, milliseconds, open_browser, played, speak, stats

VOICE = "zf_xiaobei"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--sentences", type=int, default=3)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT.parent / "bench_page.json")
    return p.parse_args(argv)


def trial(url: str, browser: Any, sentences: int, index: int) -> dict[str, float]:
    runs: dict[str, float] = {"load_average_1m": round(os.getloadavg()[0], 2)}
    for mode in ["client", "page"] if index % 2 == 0 else ["page", "client"]:
        words = text("kokoro", sentences, f"第{index + 1}{'甲乙'[mode == 'page']}")
        if mode == "client":
            body = {"text": words, "voice": VOICE, "format": "wav", "stream": True}
            runs["client_first_byte_ms"], runs["client_last_byte_ms"], _ = post(url, "/synthesize", body)
        else:
            speak(browser, VOICE, words)
            runs["audio_s"] = played(browser)
            shown = stats(browser)
            for name, stat in (("first_byte", "Time to first byte"), ("first_sound", "Time to first sound")):
                runs[f"page_{name}_ms"] = milliseconds(shown[stat])
            runs["page_last_byte_ms"] = milliseconds(shown["Synthesis time"])
    return runs


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    exit_on_sigterm()
    machine = {"processor": cpu_model(), "cpu_count": os.cpu_count(), "load_average_start": os.getloadavg()}
    browser = open_browser(1000, 1400)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-page-") as tmp,
            ProcessGroup(Path(tmp) / "logs") as group,
        ):
            env = {"TTS_ENGINES": "kokoro", "TTS_OUTPUT_URI": str(Path(tmp) / "out")}
            url, process, log = start_instance(group, "kokoro", env)
            wait_healthy(health_url(url), process, 120, log)
            warm(url)
            load(browser, url)
            runs = [trial(url, browser, args.sentences, i) for i in range(args.trials)]
    finally:
        browser.quit()
    machine["load_average_end"] = os.getloadavg()
    median = {name: round(statistics.median(r[name] for r in runs), 1) for name in runs[0]}
    report = {"machine": machine, "sentences": args.sentences, "median": median, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(
        f"{machine['processor']}, {machine['cpu_count']} CPUs, load average {machine['load_average_start']}"
    )
    m = median
    print(f"Kokoro {VOICE}, {args.sentences} Mandarin sentences, {m['audio_s']} s of audio, warm")
    print(f"client: first byte {m['client_first_byte_ms']} ms, last byte {m['client_last_byte_ms']} ms")
    print(
        f"page:   first byte {m['page_first_byte_ms']} ms, first sound {m['page_first_sound_ms']} ms, "
        f"last byte {m['page_last_byte_ms']} ms"
    )
    print(f"load average at the end {machine['load_average_end']}; wrote {args.out}")


if __name__ == "__main__":
    main()
