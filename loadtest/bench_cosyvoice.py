"""CosyVoice-300M-SFT on CPU: the lite runtime against upstream, side by side (not a test).

    .venv/bin/python -m loadtest.bench_cosyvoice [--smoke] [--threads 2] [--out FILE.json]

Needs the test venv (upstream CosyVoice is the baseline: ``loadtest.upstream_cosyvoice``). Weights
are random, at the real CosyVoice-300M sizes (``loadtest.upstream_cosyvoice.random_model.FULL``,
~436M parameters), written once in the official layout (and converted) under ``--model-dir``.

Every figure comes from a fresh subprocess with the same torch thread count:

* ready: process start -> model loaded (import + construct + load), official .pt and converted
  safetensors for the lite runtime (the int8 and fast modes: converted); upstream's modules with
  its own loading (its frontend, which needs onnxruntime and WeTextProcessing, is left out, so
  upstream's real figure is higher).
* synthesis: the LLM forced to exactly N speech tokens in both runtimes (upstream: min and max
  token/text ratios set to N/T), so both do identical work; then flow + HiFT on those tokens.
  Wall time, real-time factor (wall / audio seconds) and LLM ms per token; medians of repeats.
* peak RSS of each synthesis process (load + all its runs); the lite runtime runs the converted
  directory, as the image ships it.
* faster lite modes (bf16 LLM, int8 LLM, fast): timings, and their difference from fp32: the
  LLM's on the same teacher-forced tokens (max |log-prob| difference, top-1 agreement), flow and
  HiFT's on the same tokens and noise (mel and waveform).

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
import tempfile
import time
from pathlib import Path
from typing import Any

from function.local import REPO, cpu_model
from loadtest.revisions import worktree

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


def _precision(kind: str) -> str:
    """``lite`` (fp32) or ``lite-<precision>``."""
    return kind.removeprefix("lite-") if kind != "lite" else "fp32"


def worker_ready(kind: str, model_dir: Path, threads: int) -> dict[str, Any]:
    if kind == "upstream":
        _upstream(model_dir, threads)
    else:
        _lite(model_dir, threads, _precision(kind))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # The process's CPU (all threads): a neighbour slows the wall clock more than this.
    return {
        "ready_at": time.time(),
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def _timed(module: Any, into: list[float]) -> None:
    """Wrap ``module.inference`` so that each call appends its seconds to ``into``."""
    inference = module.inference

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = inference(*args, **kwargs)
        into.append(time.perf_counter() - start)
        return out

    module.inference = timed


def worker_synth(kind: str, model_dir: Path, threads: int, tokens: int, repeats: int) -> dict[str, Any]:
    import torch

    text = _text(TEXT_TOKENS)
    llm_s: list[float] = []
    wall_s: list[float] = []
    flow_s: list[float] = []
    hift_s: list[float] = []
    audio_s = 0.0
    if kind == "upstream":
        model, embedding = _upstream(model_dir, threads)
        _timed(model.flow, flow_s)
        _timed(model.hift, hift_s)
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
        runtime = _lite(model_dir, threads, _precision(kind))
        embedding = runtime.speakers[SPEAKER]
        _timed(runtime.flow, flow_s)
        _timed(runtime.hift, hift_s)
        for _ in range(repeats):
            torch.manual_seed(0)
            start = time.perf_counter()
            speech = runtime.llm.generate(text, embedding, force_tokens=tokens)
            runtime.text_encoder_pages.release()  # as runtime.speech_tokens does
            llm_s.append(time.perf_counter() - start)
            wave = runtime.token2wav(speech, embedding, 1.0)
            wall_s.append(time.perf_counter() - start)
            audio_s = wave.shape[-1] / 22050
    return {
        "llm_s": llm_s,
        "flow_s": flow_s,
        "hift_s": hift_s,
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
    # "fast": the int8 LLM above, and flow and HiFT in bf16 where the CPU has it: mel and wave
    # error on the same tokens and noise.
    from function.engines.cosyvoice.precision import decoders_in_bf16

    if decoders_in_bf16("fast"):
        speech = torch.tensor([forced], dtype=torch.int32)
        result["flow-hift-bf16"] = decoder_difference(
            _lite(model_dir, threads, "fp32"), _lite(model_dir, threads, "fast"), speech, embedding
        )
    return result


def decoder_difference(reference: Any, candidate: Any, speech: Any, embedding: Any) -> dict[str, float]:
    """Mel and waveform of ``candidate``'s flow + HiFT against ``reference``'s, same tokens and seed."""
    import torch

    outputs = []
    with torch.inference_mode():
        for runtime in (reference, candidate):
            torch.manual_seed(0)
            mel = runtime.flow.inference(speech, embedding)
            outputs.append((mel, runtime.hift.inference(mel)))
    (mel, wave), (mel_c, wave_c) = outputs
    return {
        "mel_max_abs_diff": (mel_c - mel).abs().max().item(),
        "mel_rms_diff": (mel_c - mel).pow(2).mean().sqrt().item(),
        "wave_max_abs_diff": (wave_c - wave).abs().max().item(),
        "wave_rms_diff": (wave_c - wave).pow(2).mean().sqrt().item(),
        "wave_rms": wave.pow(2).mean().sqrt().item(),
        "wave_peak": wave.abs().max().item(),
    }


def worker_floors(model_dir: Path, threads: int, tokens: int) -> dict[str, Any]:
    """Each stage's floor on this CPU: the LLM's weight bytes per token over the bandwidth torch's
    matrix-vector products reach; flow and HiFT's matmul/conv FLOPs over torch's sgemm peak."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    runtime = _lite(model_dir, threads, "fp32")
    embedding = runtime.speakers[SPEAKER]
    llm = runtime.llm
    # Read once per token: the decoder-only LM and the output layer (embeddings: one row).
    per_token = [p for p in llm.llm.parameters()] + [p for p in llm.llm_decoder.parameters()]
    token_bytes = sum(p.numel() * p.element_size() for p in per_token)
    weights = [p for p in per_token if p.dim() == 2]
    with torch.inference_mode():
        vectors = [torch.randn(w.shape[1]) for w in weights]
        for w, v in zip(weights, vectors, strict=True):  # pages in, warm
            torch.mv(w, v)
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            for w, v in zip(weights, vectors, strict=True):
                torch.mv(w, v)
            runs.append(time.perf_counter() - start)
        matvec_gbs = sum(w.numel() * 4 for w in weights) / min(runs) / 1e9
        big = torch.ones(256 * 1024 * 1024 // 4 * 4)  # 1 GiB
        big.sum()
        start = time.perf_counter()
        for _ in range(3):
            big.sum()
        read_gbs = 3 * big.numel() * 4 / (time.perf_counter() - start) / 1e9
        del big
        peaks = {}
        for dtype in (torch.float32, torch.bfloat16):
            a = torch.randn(2048, 2048).to(dtype)
            b = torch.randn(2048, 2048).to(dtype)
            a @ b
            start = time.perf_counter()
            for _ in range(3):
                a @ b
            peaks[str(dtype).removeprefix("torch.")] = 3 * 2 * 2048**3 / (time.perf_counter() - start) / 1e9
        speech = torch.randint(0, 4096, (tokens,), generator=torch.Generator().manual_seed(2)).tolist()
        with FlopCounterMode(display=False) as flow_count:
            mel = runtime.flow.inference(torch.tensor([speech], dtype=torch.int32), embedding)
        with FlopCounterMode(display=False) as hift_count:
            runtime.hift.inference(mel)
    return {
        "cpu": _cpu_name(),
        "llm_bytes_per_token": token_bytes,
        "matvec_gbs": matvec_gbs,
        "read_gbs": read_gbs,
        "gemm_gflops": peaks,
        "flow_gflop": flow_count.get_total_flops() / 1e9,
        "hift_gflop": hift_count.get_total_flops() / 1e9,
        "cpu_flags": sorted(
            set(_cpu_flags()) & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni"}
        ),
    }


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _cpu_flags() -> list[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return line.split(":", 1)[1].split()
    return []


# --- orchestration --------------------------------------------------------------------------------


def run_worker(args: list[str], threads: int, tree: Path = REPO) -> tuple[dict[str, Any], float]:
    """A worker of ``tree``'s code (this checkout, or a baseline revision's worktree)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(tree)}
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "loadtest.bench_cosyvoice", "--worker", *args],
        cwd=tree,
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
    from function.engines.cosyvoice.int8 import INT8_NAME
    from function.engines.cosyvoice.weights import BF16_NAME, converted_path

    # Converted again when a file convert now writes is missing (a directory from an older round).
    if not all(converted_path(converted, name).is_file() for name in (INT8_NAME, BF16_NAME)):
        converted.mkdir(parents=True, exist_ok=True)
        for path in official.iterdir():
            target = converted / path.name
            if not target.exists():
                target.symlink_to(path)
        # In a child: its peak RSS (~6 GB at full size) would otherwise be every worker's, as
        # Linux carries a process's peak RSS across fork and exec.
        command = [sys.executable, "-m", "function.engines.cosyvoice.convert", str(converted)]
        subprocess.run(command, cwd=REPO, check=True, capture_output=True)
        for name in ("llm.pt", "flow.pt", "hift.pt", "spk2info.pt"):
            (converted / name).unlink()
    return official, converted


# The lite runtimes a --baseline run measures in both trees (upstream's code is the same in both).
COMPARED = ("lite", "lite-int8", "lite-fast")


def compare(
    ref: str, converted: Path, threads: int, tokens: int, rounds: int, ready_only: bool
) -> dict[str, Any]:
    """Ready and synthesis (``ready_only``: ready) of ``COMPARED`` for this checkout and git ``ref``
    (a worktree of it), each in fresh processes, alternated run by run so that a neighbour's load
    hits both."""
    rows: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="cosyvoice-baseline-") as tmp,
        worktree(ref, Path(tmp) / "tree") as baseline,
    ):
        trees = {"this": REPO, ref: baseline}
        for _ in range(rounds):
            for kind in COMPARED:
                for name, tree in trees.items():
                    ready, started = run_worker(["ready", kind, str(converted), str(threads)], threads, tree)
                    row = rows.setdefault(
                        f"{name} {kind}", {"ready_s": [], "ready_cpu_s": [], "peak_rss_mb": 0.0}
                    )
                    row["ready_s"].append(ready["ready_at"] - started)
                    row["ready_cpu_s"].append(ready.get("cpu_s", float("nan")))  # older trees: none
                    if ready_only:
                        continue
                    synth, _ = run_worker(
                        ["synth", kind, str(converted), str(threads), str(tokens), "1"], threads, tree
                    )
                    for key in ("llm_s", "flow_s", "hift_s", "wall_s"):
                        row.setdefault(key, []).extend(synth[key])
                    row["audio_s"] = synth["audio_s"]
                    row["peak_rss_mb"] = max(row["peak_rss_mb"], synth["peak_rss_mb"])
    return rows


def print_comparison(rows: dict[str, dict[str, Any]], tokens: int) -> None:
    if not any("wall_s" in row for row in rows.values()):
        print(f"\n{'tree and runtime':28s} {'ready s':>7s} {'CPU s':>6s}  (medians; every run)")
        for name, row in rows.items():
            print(
                f"{name:28s} {_median(row['ready_s']):7.2f} {_median(row['ready_cpu_s']):6.2f}"
                f"  ready {' '.join(f'{r:.2f}' for r in row['ready_s'])}"
            )
        return
    print(f"\n{'tree and runtime':28s} {'wall s':>7s} {'RTF':>5s} {'LLM ms/tok':>10s} {'flow s':>7s} "
          f"{'HiFT s':>7s} {'ready s':>7s} {'RSS MB':>7s}  (medians; every run)")  # fmt: skip
    for name, row in rows.items():
        wall = _median(row["wall_s"])
        print(
            f"{name:28s} {wall:7.2f} {wall / row['audio_s']:5.2f} "
            f"{_median(row['llm_s']) / tokens * 1000:10.1f} {_median(row['flow_s']):7.2f} "
            f"{_median(row['hift_s']):7.2f} {_median(row['ready_s']):7.2f} {row['peak_rss_mb']:7.0f}"
            f"  wall {' '.join(f'{w:.2f}' for w in row['wall_s'])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny model, few tokens: seconds")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="--tokens only, one run per process, every runtime alternated twice (~4 min at 150)",
    )
    parser.add_argument("--tokens", type=int, default=150, help="speech tokens for --quick")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="instead: the lite runtimes of this checkout and of git REF, alternated (--tokens, --rounds)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternations for --baseline")
    parser.add_argument("--ready-only", action="store_true", help="with --baseline: ready times only")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(dispatch(args.worker)))
        return
    smoke = args.smoke
    model_dir = args.model_dir or Path("/tmp") / ("cosyvoice-bench-tiny" if smoke else "cosyvoice-bench-full")
    official, converted = prepare_model(model_dir, smoke)
    threads = args.threads
    load_before = os.getloadavg()
    if args.baseline:
        rows = compare(args.baseline, converted, threads, args.tokens, args.rounds, args.ready_only)
        print(f"\n{cpu_model()}, {os.cpu_count()} CPUs, {threads} torch threads, {args.tokens} tokens, "
              f"load average {load_before} before, {os.getloadavg()} after")  # fmt: skip
        print_comparison(rows, args.tokens)
        if args.out:
            args.out.write_text(json.dumps(rows, indent=1))
        return
    # (tokens, repeats for lite, repeats for upstream): fewer repeats where runs are long.
    plan = [(8, 2, 2)] if smoke else [(args.tokens, 1, 1)] if args.quick else [(150, 3, 3), (600, 2, 1)]
    # Fresh processes alternating lite and upstream, so that a noisy neighbour hits both.
    rounds = 2 if args.quick else 1
    report: dict[str, Any] = {"threads": threads, "smoke": smoke, "ready_s": {}, "synthesis": [], "modes": {}}

    ready_runs = 1 if smoke or args.quick else 3
    for label, kind, directory in (
        ("lite .pt", "lite", official),
        ("lite safetensors", "lite", converted),
        ("lite int8 safetensors", "lite-int8", converted),
        ("lite fast safetensors", "lite-fast", converted),
        ("upstream .pt", "upstream", official),
    ):
        times = []
        for _ in range(ready_runs):
            result, started = run_worker(["ready", kind, str(directory), str(threads)], threads)
            times.append(result["ready_at"] - started)
        report["ready_s"][label] = _median(times)

    rows: dict[tuple[str, int], dict[str, Any]] = {}

    def synth(kind: str, tokens: int, repeats: int) -> None:
        directory = official if kind == "upstream" else converted
        result, _ = run_worker(
            ["synth", kind, str(directory), str(threads), str(tokens), str(repeats)], threads
        )
        row = rows.get((kind, tokens))
        if row is None:
            rows[kind, tokens] = {"runtime": kind, "tokens": tokens, **result}
            return
        for key in ("llm_s", "flow_s", "hift_s", "wall_s"):
            row[key] += result[key]
        row["peak_rss_mb"] = max(row["peak_rss_mb"], result["peak_rss_mb"])

    for round_index in range(rounds):
        for tokens, lite_repeats, upstream_repeats in plan:
            for kind, repeats in (("lite", lite_repeats), ("upstream", upstream_repeats)):
                synth(kind, tokens, repeats)
            if round_index == 0 or args.quick:
                for kind in ("lite-bf16", "lite-int8", "lite-fast"):
                    synth(kind, tokens, lite_repeats)
    report["synthesis"] = list(rows.values())
    floors, _ = run_worker(["floors", str(converted), str(threads), str(plan[0][0])], threads)
    report["floors"] = floors
    accuracy, _ = run_worker(["accuracy", str(converted), str(threads), str(min(plan[0][0], 100))], threads)
    report["modes"] = accuracy
    report["load_average"] = {"before": load_before, "after": os.getloadavg()}

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
    if name == "floors":
        return worker_floors(Path(rest[0]), int(rest[1]), int(rest[2]))
    if name == "accuracy":
        return worker_accuracy(Path(rest[0]), int(rest[1]), int(rest[2]))
    raise SystemExit(f"unknown worker {name}")


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\nCosyVoice-300M-SFT sizes{' (SMOKE: tiny model)' if report['smoke'] else ''}, "
        f"{report['threads']} torch threads, medians; {cpu_model()}, load average "
        f"{report['load_average']['before']} before, {report['load_average']['after']} after"
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
    print(f"\n{'runtime':10s} {'tokens':>6s} {'LLM s':>7s} {'flow s':>7s} {'HiFT s':>7s}  (medians)")
    for row in report["synthesis"]:
        print(
            f"{row['runtime']:10s} {row['tokens']:6d} {_median(row['llm_s']):7.2f} "
            f"{_median(row['flow_s']):7.2f} {_median(row['hift_s']):7.2f}"
        )
    floors = report.get("floors")
    if floors:
        print(f"\nfloors on {floors['cpu']} ({', '.join(floors['cpu_flags'])}):")
        print(
            f"  LLM: {floors['llm_bytes_per_token'] / 1e9:.3f} GB fp32 weights per token; matrix-vector "
            f"products stream {floors['matvec_gbs']:.1f} GB/s (plain reads {floors['read_gbs']:.1f} GB/s): "
            f"{floors['llm_bytes_per_token'] / floors['matvec_gbs'] / 1e6:.1f} ms/token fp32, "
            f"{floors['llm_bytes_per_token'] / 4 / floors['matvec_gbs'] / 1e6:.1f} ms/token at int8 bytes"
        )
        peak = floors["gemm_gflops"]
        print(f"  gemm peak: fp32 {peak['float32']:.0f} GFLOPS, bf16 {peak['bfloat16']:.0f} GFLOPS")
        for stage in ("flow", "hift"):
            gflop = floors[f"{stage}_gflop"]
            print(
                f"  {stage}: {gflop:.1f} GFLOP in matmuls/convs: {gflop / peak['float32']:.2f} s at the "
                f"fp32 peak, {gflop / peak['bfloat16']:.2f} s at the bf16 peak"
            )
    for precision, diff in report["modes"].items():
        if precision == "flow-hift-bf16":
            print(
                f"  flow + HiFT in bf16 vs fp32 (same tokens): mel max |diff| "
                f"{diff['mel_max_abs_diff']:.4f}, rms {diff['mel_rms_diff']:.4f}; wave max |diff| "
                f"{diff['wave_max_abs_diff']:.4f}, rms {diff['wave_rms_diff']:.5f} "
                f"(wave peak {diff['wave_peak']:.3f}, rms {diff['wave_rms']:.4f})"
            )
            continue
        print(
            f"  {precision} LLM vs fp32: max |logp diff| {diff['max_abs_logp_diff']:.4f}, "
            f"top-1 agreement {diff['top1_agreement'] * 100:.1f}%"
        )


if __name__ == "__main__":
    main()
