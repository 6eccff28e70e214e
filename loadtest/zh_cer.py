"""Chinese read right, heard through the function: character error rate by whisper-base.

Every sentence of ``loadtest/data/zh_everyday.tsv`` (everyday Chinese no test has seen: numbers,
sandhi, polyphones, Traditional text, mixed English, punctuation) goes through ``POST /synthesize``
of a real function server with the default Mandarin voice, and the audio through the offline
whisper-base (``loadtest/asr.py``). With ``--baseline REF`` a second server runs the code of git
``REF`` (a worktree of it), and the two are asked in turn, sentence by sentence, in the same run.

Two scores: the character error rate, and the syllable error rate (toneless pinyin of both
texts), which forgives the homophones the recogniser picks (再 for 在) and so counts only what was
not heard. What could make the figures wrong: the recogniser forgives tones and 两/二 (the CER normalisation
reads digits and Chinese numerals alike), so a wrong tone or a wrong 二 costs nothing here (the
reading tests, tests/kokoro/test_zh_readings.py, check those); whisper-base errs by a few per cent
on clean Mandarin by itself; one voice only.

    python -m loadtest.zh_cer --baseline aa2080e
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import requests

from function.local import (
    ONE_AT_A_TIME,
    SOURCE,
    cpu_model,
    free_port,
    health_url,
    serve_command,
    wait_healthy,
)
from loadtest import asr
from loadtest.processes import ProcessGroup, exit_on_sigterm
from loadtest.revisions import worktree
from tests.audio_checks import decode

SET = Path(__file__).parent / "data" / "zh_everyday.tsv"


def load_set() -> list[tuple[str, str]]:
    lines = SET.read_text("utf-8").splitlines()
    return [(kind, text) for kind, text in (line.split("\t") for line in lines if line and line[0] != "#")]


def corpus_cer(cases: list[tuple[str, str]], heard: list[str], kind: str, score=asr.cer) -> float:
    """CER (or ``score``) over the class's sentences as one corpus (``"all"``: every sentence)."""
    pairs = [(text, h) for (k, text), h in zip(cases, heard, strict=True) if kind in ("all", k)]
    return round(score("".join(t for t, _ in pairs), "".join(h for _, h in pairs)), 4)


def hear(url: str, text: str) -> str:
    response = requests.post(f"{url}/synthesize?response=audio", json={"text": text}, timeout=300)
    response.raise_for_status()
    audio = decode(response.content)
    return asr.transcribe(audio.samples, audio.sample_rate, "zh")


def start(group: ProcessGroup, name: str, out: Path, source: Path | None) -> str:
    env = {**ONE_AT_A_TIME, "TTS_ENGINES": "kokoro", "TTS_OUTPUT_URI": str(out), "TTS_THREADS": "1"}
    port = free_port()
    command = serve_command("synthesize", port)
    if source is not None:  # the baseline: its own code first on the path, its own main.py
        env["PYTHONPATH"] = str(source)
        command[command.index(f"--source={SOURCE}")] = f"--source={source / 'function' / 'main.py'}"
    process, log = group.start(name, command, env)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(health_url(url), process, 120, log)
    return url


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", help="git ref whose code is measured alongside, e.g. aa2080e")
    parser.add_argument("--out", type=Path, default=Path("loadtest/results/zh_cer.json"))
    args = parser.parse_args(argv)
    exit_on_sigterm()
    cases = load_set()
    report: dict = {"processor": cpu_model(), "cpus": os.cpu_count(), "load_start": os.getloadavg()}
    with (
        tempfile.TemporaryDirectory(prefix="zh-cer-") as tmp,
        contextlib.ExitStack() as stack,
        ProcessGroup(Path(tmp) / "logs") as group,
    ):
        servers = {"this": start(group, "this", Path(tmp) / "out-this", None)}
        if args.baseline:
            tree = stack.enter_context(worktree(args.baseline, Path(tmp) / "baseline"))
            servers["baseline"] = start(group, "baseline", Path(tmp) / "out-baseline", tree)
        heard: dict[str, list[str]] = defaultdict(list)
        rows = []
        started = time.monotonic()
        for kind, text in cases:
            row = {"class": kind, "text": text}
            for name, url in servers.items():  # alternated, sentence by sentence
                transcript = hear(url, text)
                heard[name].append(transcript)
                row[name] = {"heard": transcript, "cer": round(asr.cer(text, transcript), 3)}
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False))
    kinds = list(dict.fromkeys(kind for kind, _ in cases))
    summary = {
        f"{name} {label}": {k: corpus_cer(cases, transcripts, k, score) for k in ("all", *kinds)}
        for name, transcripts in heard.items()
        for label, score in (("CER", asr.cer), ("syllables", asr.syllable_error_rate))
    }
    report |= {"load_end": os.getloadavg(), "seconds": round(time.monotonic() - started), "cer": summary}
    report["rows"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    print(
        f"{report['processor']}, {report['cpus']} CPUs, load {report['load_start']} -> {report['load_end']}"
    )
    for name, scores in summary.items():
        print(f"{name:19} " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
