"""CosyVoice-300M-SFT on CPU: the lite runtime against upstream, side by side (not a test).

    .venv/bin/python -m loadtest.bench_cosyvoice [--smoke] [--threads 2] [--out FILE.json]

Needs the test venv (upstream CosyVoice is the baseline: ``loadtest.upstream_cosyvoice``). Weights
are random, at the real CosyVoice-300M sizes (``loadtest.upstream_cosyvoice.random_model.FULL``,
~436M parameters), written once in the official layout (and converted) under ``--model-dir``.

Every figure comes from a fresh subprocess with the same torch thread count:

* ready: process start -> model loaded (import + construct + load), official .pt and converted
  safetensors for the lite runtime; upstream's modules with its own loading (its frontend, which
  needs onnxruntime and WeTextProcessing, is left out, so upstream's real figure is higher).
* synthesis: the LLM forced to exactly N speech tokens in both runtimes (upstream: min and max
  token/text ratios set to N/T), so both do identical work; then flow + HiFT on those tokens.
  Wall time, real-time factor (wall / audio seconds) and LLM ms per token; medians of repeats.
* peak RSS of each synthesis process (load + all its runs).
* faster lite modes (bf16 LLM, int8 dynamic quantised LLM): timings, and their difference from
  fp32 on the same teacher-forced tokens (max |log-prob| difference, top-1 agreement).

``--smoke`` runs the same code on the tiny model with a few tokens (seconds); a test runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from function.local import REPO

SPEAKER = "英文女"
TEXT_TOKENS = 30


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- workers (run in fresh subprocesses) --------------------------------------------------------


def _text(length: int):
    import torch

    return torch.randint(0, 51866, (1, length), generator=torch.Generator().manual_seed(0), dtype=torch.int32)


def _lite(model_dir: Path, threads: int, precision: str):
    from function.engines.cosyvoice.runtime import load_runtime

    return load_runtime(model_dir, threads=threads, precision=precision)


def _upstream(model_dir: Path, threads: int):
    import torch

    torch.set_num_threads(threads)
    from loadtest.upstream_cosyvoice import install_stubs

    install_stubs()
    from cosyvoice.cli.model import CosyVoiceModel

    from function.engines.cosyvoice.hparams import load_hparams
    from loadtest.upstream_cosyvoice.random_model import instantiate

    hparams = load_hparams(model_dir / "cosyvoice.yaml")
    model = CosyVoiceModel(
        instantiate(hparams["llm"]), instantiate(hparams["flow"]), instantiate(hparams["hift"])
    )
    model.load(*(str(model_dir / f"{name}.pt") for name in ("llm", "flow", "hift")))
    spk2info = torch.load(model_dir / "spk2info.pt", map_location="cpu", weights_only=True)
    return model, spk2info[SPEAKER]["embedding"]


def worker_ready(kind: str, model_dir: Path, threads: int) -> dict[str, Any]:
    if kind == "upstream":
        _upstream(model_dir, threads)
    else:
        _lite(model_dir, threads, "fp32")
    return {"ready_at": time.time()}


def worker_synth(kind: str, model_dir: Path, threads: int, tokens: int, repeats: int) -> dict[str, Any]:
    import torch

    text = _text(TEXT_TOKENS)
    llm_s: list[float] = []
    wall_s: list[float] = []
    audio_s = 0.0
    if kind == "upstream":
        model, embedding = _upstream(model_dir, threads)
        ratio = (tokens + 0.5) / TEXT_TOKENS
        inference = model.llm.inference

        def timed_inference(**kwargs: Any):
            start = time.perf_counter()
            yield from inference(**kwargs, min_token_text_ratio=ratio, max_token_text_ratio=ratio)
            llm_s.append(time.perf_counter() - start)

        model.llm.inference = timed_inference
        for _ in range(repeats):
            torch.manual_seed(0)
            start = time.perf_counter()
            (out,) = list(model.tts(text=text, flow_embedding=embedding, llm_embedding=embedding))
            wall_s.append(time.perf_counter() - start)
            audio_s = out["tts_speech"].shape[1] / 22050
    else:
        precision = kind.removeprefix("lite-") if kind != "lite" else "fp32"
        runtime = _lite(model_dir, threads, precision)
        embedding = runtime.speakers[SPEAKER]
        for _ in range(repeats):
            torch.manual_seed(0)
            start = time.perf_counter()
            speech = runtime.llm.generate(text, embedding, force_tokens=tokens)
            llm_s.append(time.perf_counter() - start)
            wave = runtime.token2wav(speech, embedding, 1.0)
            wall_s.append(time.perf_counter() - start)
            audio_s = wave.shape[-1] / 22050
    return {
        "llm_s": llm_s,
        "wall_s": wall_s,
        "audio_s": audio_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def worker_accuracy(model_dir: Path, threads: int, tokens: int) -> dict[str, Any]:
    """bf16 and int8 LLMs against fp32 on the same teacher-forced tokens."""
    import torch

    text = _text(TEXT_TOKENS)
    forced = torch.randint(0, 4096, (tokens,), generator=torch.Generator().manual_seed(1)).tolist()

    def logps(llm, embedding) -> torch.Tensor:
        with torch.inference_mode():
            state, logp = llm.start(text, embedding, len(forced))
            out = [logp]
            out += [llm.step(state, token) for token in forced[:-1]]
        return torch.stack(out)

    reference_runtime = _lite(model_dir, threads, "fp32")
    embedding = reference_runtime.speakers[SPEAKER]
    reference = logps(reference_runtime.llm, embedding)
    del reference_runtime
    result = {}
    for precision in ("bf16", "int8"):
        got = logps(_lite(model_dir, threads, precision).llm, embedding)
        result[precision] = {
            "max_abs_logp_diff": (got - reference).abs().max().item(),
            "top1_agreement": (got.argmax(-1) == reference.argmax(-1)).float().mean().item(),
        }
    return result


# --- orchestration --------------------------------------------------------------------------------


def run_worker(args: list[str], threads: int) -> tuple[dict[str, Any], float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "loadtest.bench_cosyvoice", "--worker", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"worker {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), started


def prepare_model(model_dir: Path, smoke: bool) -> tuple[Path, Path]:
    """The official layout (random weights) and a converted copy sharing the vocab and yaml."""
    from loadtest.upstream_cosyvoice.random_model import FULL, TINY, build_tiny_model

    official = model_dir / "official"
    converted = model_dir / "converted"
    if not (official / "hift.pt").is_file():
        build_tiny_model(official, sizes=TINY if smoke else FULL)
    if not (converted / "manifest.json").is_file():
        from function.engines.cosyvoice.convert import convert

        converted.mkdir(parents=True, exist_ok=True)
        for path in official.iterdir():
            target = converted / path.name
            if not target.exists():
                target.symlink_to(path)
        convert(converted)
        for name in ("llm.pt", "flow.pt", "hift.pt", "spk2info.pt"):
            (converted / name).unlink()
    return official, converted


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny model, few tokens: seconds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(dispatch(args.worker)))
        return
    smoke = args.smoke
    model_dir = args.model_dir or Path("/tmp") / ("cosyvoice-bench-tiny" if smoke else "cosyvoice-bench-full")
    official, converted = prepare_model(model_dir, smoke)
    threads = args.threads
    # (tokens, repeats for lite, repeats for upstream): fewer repeats where runs are long.
    plan = [(8, 2, 2)] if smoke else [(150, 3, 3), (600, 2, 1)]
    report: dict[str, Any] = {"threads": threads, "smoke": smoke, "ready_s": {}, "synthesis": [], "modes": {}}

    ready_runs = 1 if smoke else 3
    for label, kind, directory in (
        ("lite .pt", "lite", official),
        ("lite safetensors", "lite", converted),
        ("upstream .pt", "upstream", official),
    ):
        times = []
        for _ in range(ready_runs):
            result, started = run_worker(["ready", kind, str(directory), str(threads)], threads)
            times.append(result["ready_at"] - started)
        report["ready_s"][label] = _median(times)

    for tokens, lite_repeats, upstream_repeats in plan:
        for kind, repeats in (("lite", lite_repeats), ("upstream", upstream_repeats)):
            result, _ = run_worker(
                ["synth", kind, str(official), str(threads), str(tokens), str(repeats)], threads
            )
            report["synthesis"].append({"runtime": kind, "tokens": tokens, **result})
    for tokens, lite_repeats, _ in plan:
        for kind in ("lite-bf16", "lite-int8"):
            result, _ = run_worker(
                ["synth", kind, str(official), str(threads), str(tokens), str(lite_repeats)], threads
            )
            report["synthesis"].append({"runtime": kind, "tokens": tokens, **result})
    accuracy, _ = run_worker(["accuracy", str(official), str(threads), str(min(plan[0][0], 100))], threads)
    report["modes"] = accuracy

    print_table(report)
    out = args.out or REPO / "loadtest" / "results" / (
        "bench_cosyvoice_smoke.json" if smoke else "bench_cosyvoice.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"wrote {out}")


def dispatch(argv: list[str]) -> dict[str, Any]:
    name, *rest = argv
    if name == "ready":
        return worker_ready(rest[0], Path(rest[1]), int(rest[2]))
    if name == "synth":
        return worker_synth(rest[0], Path(rest[1]), int(rest[2]), int(rest[3]), int(rest[4]))
    if name == "accuracy":
        return worker_accuracy(Path(rest[0]), int(rest[1]), int(rest[2]))
    raise SystemExit(f"unknown worker {name}")


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\nCosyVoice-300M-SFT sizes{' (SMOKE: tiny model)' if report['smoke'] else ''}, "
        f"{report['threads']} torch threads, medians"
    )
    print("\nready after process start (import + construct + load):")
    upstream_ready = report["ready_s"]["upstream .pt"]
    for label, seconds in report["ready_s"].items():
        print(f"  {label:18s} {seconds:7.2f} s   ({upstream_ready / seconds:4.1f}x faster than upstream)")
    print(
        f"\n{'runtime':10s} {'tokens':>6s} {'wall s':>8s} {'RTF':>6s} {'LLM ms/tok':>10s} "
        f"{'flow+HiFT s':>11s} {'peak RSS MB':>11s} {'speedup':>8s}"
    )
    baseline = {
        row["tokens"]: _median(row["wall_s"]) for row in report["synthesis"] if row["runtime"] == "upstream"
    }
    for row in report["synthesis"]:
        wall = _median(row["wall_s"])
        llm = _median(row["llm_s"])
        speedup = baseline.get(row["tokens"], float("nan")) / wall
        print(
            f"{row['runtime']:10s} {row['tokens']:6d} {wall:8.2f} {wall / row['audio_s']:6.2f} "
            f"{llm / row['tokens'] * 1000:10.1f} {wall - llm:11.2f} {row['peak_rss_mb']:11.0f}"
            f" {speedup:7.2f}x"
        )
    for precision, diff in report["modes"].items():
        print(
            f"  {precision} LLM vs fp32: max |logp diff| {diff['max_abs_logp_diff']:.4f}, "
            f"top-1 agreement {diff['top1_agreement'] * 100:.1f}%"
        )


if __name__ == "__main__":
    main()
