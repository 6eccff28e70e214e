"""Kokoro engine on CPU: cold start, real-time factors, onnxruntime session options (not a test).

    .venv/bin/python loadtest/bench_kokoro.py [--model-dir models/kokoro-82m] [--threads 1]
        [--repeats 5] [--cold 3] [--baseline REF] [--compare-rounds 3] [--asr] [--options-rounds 3]
        [--out FILE.json]

Prints (and with ``--out`` writes as JSON):

* cold start, in fresh processes: process start -> first Chinese audio (the spawn is timed by this
  process, the phases by the child: imports, construct, ``load()``, first synthesis) and the
  child's peak RSS. Median of ``--cold`` processes per model, static and dynamic alternated, and
  with ``--baseline REF`` that revision's engine too (checked out beside this one, its model dir
  built by its own assets step), so a cold-start change is measured against what it replaced.
* real-time factor (synthesis wall time / audio seconds) on ``--threads`` intra-op threads for a
  ~40-character Mandarin paragraph and an English sentence of similar length: median of
  ``--repeats`` after a warm-up, split into the text front end (G2P) and onnxruntime.
* the static model against today's dynamic int8 one (``--compare-rounds``), alternated round by
  round in one process: Mandarin and English wall time, the speed-up, and for long and loud
  sentences the log-mel difference between the two outputs, their peaks and clipped samples;
  with ``--asr``, Whisper's character error rate on Chinese sentences for both (loadtest/asr.py).
* the first audio of a ~100-character Mandarin paragraph, warm: a stream's (a short first clause,
  ``speak_streamed``) against the whole first sentence's (``speak``), alternated.
* onnxruntime session options against the default, alternated round by round in one process so
  a shared machine's load hits them alike: no memory arena, ``ORT_ENABLE_ALL`` (the default but
  for the static model, which the build saved optimised), ``ORT_ENABLE_EXTENDED`` and
  ``ORT_ENABLE_BASIC`` graph optimisation, ``ORT_PARALLEL`` execution mode.

Imports only the ``function`` package (and onnxruntime, for the option variants).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from function.engines.kokoro import KokoroEngine  # noqa: E402
from function.local import cpu_model  # noqa: E402
from loadtest.revisions import worktree  # noqa: E402

MANDARIN = "人工智能正在改变我们的生活方式。从智能手机到自动驾驶汽车，新技术让很多事情变得更加方便。"
ENGLISH = "Artificial intelligence is changing the way we live, from phones to self-driving cars."
COLD_TEXT = "你好，欢迎使用语音合成服务。"
# Quality checks: no numbers, so a change in how the front end reads them moves no figure. Loud
# (exclamations) and long sentences are where a static activation scale would clip first.
QUALITY_ZH = (
    "今天的天气很好，我们一起去公园散步吧。",
    "请把窗户关上，外面的风太大了。",
    "图书馆里非常安静，大家都在认真地看书。",
    "妈妈做的红烧肉是我吃过最好吃的菜。",
    "注意安全！前方道路正在施工，请绕行！",
    "科学家们经过多年的研究，终于找到了治疗这种疾病的新方法，这个发现让全世界的病人看到了希望，"
    "也让医生们对未来充满了信心。",
    "他站在山顶上大声喊道：我终于做到了！",
    "秋天的树叶变成了金黄色，一阵风吹过，落叶像蝴蝶一样在空中飞舞。",
)
QUALITY_EN = (
    "Stop! Get away from the edge right now, it is not safe!",
    "The library closes early on holidays, so please return your books before noon.",
)
# A 91-character paragraph for the streamed first audio (its first sentence is 32 characters).
STREAM_TEXT = (
    "春天来了，公园里的花都开了，孩子们在草地上奔跑，鸟儿在树上唱歌。老人们在湖边散步聊天，"
    "年轻人在树荫下安静地看书。傍晚的时候，夕阳把整个湖面染成了金色，大家都舍不得离开这个美丽的地方。"
)
QUALITY_VOICES_ZH = ("zf_xiaobei", "zm_yunjian")
QUALITY_VOICE_EN = "af_heart"
MANDARIN_VOICE = "zf_xiaobei"
ENGLISH_VOICE = "af_heart"

# A fresh process: imports, construct, load, one Chinese sentence as a stream speaks it (its first
# chunk is what a listener waits for: a short clause where the engine cuts one, else the whole
# sentence). time.time() is shared with the parent, which took it just before spawning.
_COLD_CHILD = """
import json, resource, sys, time
started = time.time()
from pathlib import Path
from function.engines.kokoro import KokoroEngine
imported = time.time()
engine = KokoroEngine(Path(sys.argv[1]), threads=int(sys.argv[2]), **json.loads(sys.argv[5]))
voices = engine.voices()
constructed = time.time()
engine.load()
loaded = time.time()
audio = []
for chunk in engine.speak_streamed(sys.argv[4], sys.argv[3], 1.0, 0.3):
    first = first if audio else time.time()
    audio.append(chunk)
done = time.time()
print(json.dumps({
    "interpreter_start": started, "imports_s": imported - started, "construct_s": constructed - imported,
    "first_chunk_s": first - loaded, "first_chunk_ready": first,
    "load_s": loaded - constructed, "first_synthesis_s": done - loaded, "audio_ready": done,
    **{f"load_{name}_s": seconds for name, seconds in getattr(engine, "load_seconds", {}).items()},
    "audio_s": sum(len(a) for a in audio) / engine.sample_rate,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def cold_start(
    model_dir: Path, threads: int, runs: int, baseline: Path | None = None
) -> dict[str, dict[str, float]]:
    """Median phases of ``runs`` fresh processes per variant, the variants alternated process by
    process: this checkout's engine with the static and with the dynamic model and, given
    ``baseline`` (another revision's checkout, its model dir built by its own assets step in
    ``baseline/models/kokoro-82m``), that revision's engine as it picks its model."""
    variants: dict[str, tuple[Path, Path, dict[str, Any]]] = {
        "static": (REPO, model_dir, {"static": True}),
        "dynamic": (REPO, model_dir, {"static": False}),
    }
    if baseline is not None:
        variants["baseline"] = (baseline, baseline / "models" / "kokoro-82m", {})
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, (tree, directory, options) in variants.items():
            spawned = time.time()
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _COLD_CHILD,
                    str(directory),
                    str(threads),
                    MANDARIN_VOICE,
                    COLD_TEXT,
                    json.dumps(options),
                ],
                cwd=tree,
                env={**os.environ, "PYTHONPATH": str(tree)},
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["process_start_to_audio_s"] = row["audio_ready"] - spawned
            row["process_start_to_first_chunk_s"] = row["first_chunk_ready"] - spawned
            row["interpreter_startup_s"] = row["interpreter_start"] - spawned
            rows[name].append(row)
    medians = {}
    for name, variant_rows in rows.items():
        keys = [key for key in variant_rows[0] if not key.endswith(("_start", "_ready"))]
        medians[name] = {key: round(statistics.median(r[key] for r in variant_rows), 3) for key in keys}
    return medians


def build_model_dir(tree: Path) -> None:
    """``tree``'s own Kokoro model dir, by its own assets step (voices from npm's cache)."""
    subprocess.run(
        [sys.executable, "-m", "function.engines.kokoro.assets", "models/kokoro-82m", "--offline"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
    )


def realtime_factor(engine: KokoroEngine, text: str, voice: str, repeats: int) -> dict[str, float]:
    """Median wall time of the front end and of onnxruntime for ``text``, after one warm-up."""
    engine.synthesize(engine.pieces(text)[0], voice, 1.0)
    g2p, onnx, audio_s = [], [], 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        pieces = engine.pieces(text)
        for piece in pieces:
            engine.phonemes(piece, voice)
        front = time.perf_counter() - started
        started = time.perf_counter()
        audio = [engine.synthesize(piece, voice, 1.0) for piece in pieces]
        total = time.perf_counter() - started  # includes the front end again (~ms), measured above
        audio_s = sum(len(a) for a in audio) / engine.sample_rate
        g2p.append(front)
        onnx.append(total - front)
    wall = statistics.median(g + o for g, o in zip(g2p, onnx, strict=True))
    return {
        "chars": len(text),
        "audio_s": round(audio_s, 3),
        "g2p_ms": round(statistics.median(g2p) * 1000, 2),
        "onnx_s": round(statistics.median(onnx), 3),
        "rtf": round(wall / audio_s, 3),
    }


def log_mel(audio: np.ndarray, sample_rate: int = 24_000, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """80-band log-mel spectrogram in dB, floored 80 dB under its peak (silence compares as equal)."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1))
    edges = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + sample_rate / 2 / 700), 82) / 2595) - 1)
    bins = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bank = np.clip(np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)), 0, None)
    mel = 20 * np.log10(np.maximum(power @ bank.T, 1e-5))
    return np.maximum(mel, mel.max() - 80)


def compare_models(model_dir: Path, threads: int, rounds: int, asr: bool) -> dict[str, Any]:
    """The static model against today's dynamic one: speed alternated round by round, then the
    difference between their outputs (and, with ``asr``, each one's Chinese CER)."""
    engines = {"dynamic": KokoroEngine(model_dir, threads, static=False)}
    engines["static"] = KokoroEngine(model_dir, threads, static=True)
    report: dict[str, Any] = {}
    for name, engine in engines.items():
        started = time.perf_counter()
        engine.load()
        report[f"{name}_load_s"] = round(time.perf_counter() - started, 3)
    for label, text, voice in (("mandarin", MANDARIN, MANDARIN_VOICE), ("english", ENGLISH, ENGLISH_VOICE)):
        times: dict[str, list[float]] = {name: [] for name in engines}
        audio_s = 0.0
        for round_ in range(rounds + 1):  # round 0 warms both up
            for name, engine in engines.items():
                started = time.perf_counter()
                audio = [engine.synthesize(piece, voice, 1.0) for piece in engine.pieces(text)]
                if round_:
                    times[name].append(time.perf_counter() - started)
                audio_s = sum(len(a) for a in audio) / engine.sample_rate
        walls = {name: statistics.median(values) for name, values in times.items()}
        report[label] = {
            **{f"{name}_rtf": round(wall / audio_s, 3) for name, wall in walls.items()},
            **{f"{name}_wall_s": sorted(round(t, 3) for t in times[name]) for name in engines},
            "speedup": round(walls["dynamic"] / walls["static"], 2),
        }
    report["quality"] = output_difference(engines)
    if asr:
        report["cer"] = chinese_cer(engines)
    return report


def _speak(engine: KokoroEngine, text: str, voice: str) -> np.ndarray:
    return np.concatenate([engine.synthesize(piece, voice, 1.0) for piece in engine.pieces(text)])


def untrimmed(engine: KokoroEngine, text: str, voice: str) -> np.ndarray:
    """The model's own output, before its silent edges are cut (``edges``): the two models' edges
    are cut a 10 ms window apart now and then, which would misalign the comparison."""
    feeds = [engine.feed(engine.phonemes(piece, voice), voice, 1.0) for piece in engine.pieces(text)]
    return np.concatenate([engine._session.run(None, feed)[0].reshape(-1) for feed in feeds])


def output_difference(engines: dict[str, KokoroEngine]) -> dict[str, Any]:
    """Per quality sentence: the mean absolute log-mel difference (dB) between the engines' outputs
    (the durations are the same: only the decoder differs), and each one's peak and clipped
    samples (|x| >= 1)."""
    texts = [(t, v) for t in QUALITY_ZH for v in QUALITY_VOICES_ZH] + [
        (t, QUALITY_VOICE_EN) for t in QUALITY_EN
    ]
    rows = []
    for text, voice in texts:
        out = {name: untrimmed(engine, text, voice) for name, engine in engines.items()}
        dynamic, static = out["dynamic"], out["static"]
        n = min(len(dynamic), len(static))
        rows.append(
            {
                "text": text[:12],
                "voice": voice,
                "same_length": len(dynamic) == len(static),
                "mel_db": round(float(np.abs(log_mel(static[:n]) - log_mel(dynamic[:n])).mean()), 2),
                **{f"{name}_peak": round(float(np.abs(a).max()), 3) for name, a in out.items()},
                **{f"{name}_clipped": int((np.abs(a) >= 1).sum()) for name, a in out.items()},
            }
        )
    return {"mean_mel_db": round(statistics.mean(r["mel_db"] for r in rows), 2), "sentences": rows}


def chinese_cer(engines: dict[str, KokoroEngine]) -> dict[str, float]:
    """Whisper base's mean character error rate over the quality sentences, per engine."""
    from loadtest import asr

    cers: dict[str, list[float]] = {name: [] for name in engines}
    for text in QUALITY_ZH:
        for voice in QUALITY_VOICES_ZH:
            for name, engine in engines.items():
                transcript = asr.transcribe(_speak(engine, text, voice), engine.sample_rate, "zh")
                cers[name].append(asr.cer(text, transcript))
    return {name: round(statistics.mean(values), 4) for name, values in cers.items()}


def first_audio(engine: KokoroEngine, rounds: int) -> dict[str, Any]:
    """Seconds to the first audio chunk of STREAM_TEXT, warm: a stream's (a short first clause)
    against the whole first sentence's, alternated round by round."""
    speakers = {"streamed": engine.speak_streamed, "first_sentence": engine.speak}
    times: dict[str, list[float]] = {name: [] for name in speakers}
    firsts: dict[str, float] = {}
    for round_ in range(rounds + 1):  # round 0 warms up
        for name, speak in speakers.items():
            started = time.perf_counter()
            first = next(iter(speak(STREAM_TEXT, MANDARIN_VOICE, 1.0, 0.3)))
            if round_:
                times[name].append(time.perf_counter() - started)
            firsts[name] = len(first) / engine.sample_rate
    return {
        "chars": len(STREAM_TEXT),
        **{f"{name}_s": round(statistics.median(values), 3) for name, values in times.items()},
        **{f"{name}_chunk_audio_s": round(audio_s, 2) for name, audio_s in firsts.items()},
    }


def _variant(name: str, change: Any) -> type[KokoroEngine]:
    class Variant(KokoroEngine):
        def _session_options(self, ort: Any) -> Any:
            options = super()._session_options(ort)
            change(ort, options)
            return options

    Variant.__name__ = name
    return Variant


VARIANTS: dict[str, Any] = {
    "default": lambda ort, o: None,
    "no_arena": lambda ort, o: setattr(o, "enable_cpu_mem_arena", False),
    "opt_all": lambda ort, o: setattr(
        o, "graph_optimization_level", ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    ),
    "opt_extended": lambda ort, o: setattr(
        o, "graph_optimization_level", ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ),
    "opt_basic": lambda ort, o: setattr(
        o, "graph_optimization_level", ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    ),
    "parallel_mode": lambda ort, o: setattr(o, "execution_mode", ort.ExecutionMode.ORT_PARALLEL),
}


def session_options(model_dir: Path, threads: int, rounds: int) -> dict[str, dict[str, float]]:
    """Each variant's Mandarin onnxruntime time, alternated: round r runs every variant once."""
    engines = {}
    for name, change in VARIANTS.items():
        engine = _variant(name, change)(model_dir, threads=threads)
        started = time.perf_counter()
        engine.load()
        engines[name] = (engine, time.perf_counter() - started)
    pieces = engines["default"][0].pieces(MANDARIN)
    times: dict[str, list[float]] = {name: [] for name in engines}
    audio_s = 0.0
    for round_ in range(rounds + 1):  # round 0 warms every session up
        for name, (engine, _) in engines.items():
            started = time.perf_counter()
            audio = [engine.synthesize(piece, MANDARIN_VOICE, 1.0) for piece in pieces]
            if round_:
                times[name].append(time.perf_counter() - started)
            audio_s = sum(len(a) for a in audio) / engine.sample_rate
    return {
        name: {
            "session_load_s": round(engines[name][1], 3),
            "wall_s": round(statistics.median(values), 3),
            "rtf": round(statistics.median(values) / audio_s, 3),
        }
        for name, values in times.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models" / "kokoro-82m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold", type=int, default=3, help="fresh processes per model; 0 skips")
    parser.add_argument("--compare-rounds", type=int, default=3, help="0 skips static vs dynamic")
    parser.add_argument("--asr", action="store_true", help="with the comparison: Whisper CER on Chinese")
    parser.add_argument("--options-rounds", type=int, default=3, help="0 skips the session-option comparison")
    parser.add_argument(
        "--baseline", help="git ref whose engine's cold start runs alternated with this one's"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    report: dict[str, Any] = {
        "cpu": f"{cpu_model()}, {os.cpu_count()} vCPU",
        "load_average_before": os.getloadavg(),
        "threads": args.threads,
    }
    print(f"CPU: {report['cpu']}; load average {report['load_average_before']}; {args.threads} thread(s)")

    if args.cold:
        with tempfile.TemporaryDirectory(prefix="baseline-") as tmp, contextlib.ExitStack() as stack:
            baseline = None
            if args.baseline:
                baseline = stack.enter_context(worktree(args.baseline, Path(tmp) / "baseline"))
                build_model_dir(baseline)
            report["cold_start"] = cold_start(args.model_dir, args.threads, args.cold, baseline)
        for name, row in report["cold_start"].items():
            print(f"cold start {name:>8} (median of {args.cold} processes): {json.dumps(row)}")

    engine = KokoroEngine(args.model_dir, threads=args.threads)
    started = time.perf_counter()
    engine.load()
    report["load_s"] = round(time.perf_counter() - started, 3)
    print(f"load() in a warm process: {report['load_s']} s")

    report["mandarin"] = realtime_factor(engine, MANDARIN, MANDARIN_VOICE, args.repeats)
    print(f"Mandarin ({MANDARIN_VOICE}): {json.dumps(report['mandarin'])}")
    report["english"] = realtime_factor(engine, ENGLISH, ENGLISH_VOICE, args.repeats)
    print(f"English ({ENGLISH_VOICE}): {json.dumps(report['english'])}")
    report["first_audio"] = first_audio(engine, args.repeats)
    print(f"first audio, warm: {json.dumps(report['first_audio'])}")
    del engine

    if args.compare_rounds:
        report["static_vs_dynamic"] = compare_models(
            args.model_dir, args.threads, args.compare_rounds, args.asr
        )
        print(f"static vs dynamic: {json.dumps(report['static_vs_dynamic'])}")
    if args.options_rounds:
        report["session_options"] = session_options(args.model_dir, args.threads, args.options_rounds)
        for name, row in report["session_options"].items():
            print(f"session options {name:>13}: {json.dumps(row)}")
    report["load_average_after"] = os.getloadavg()
    print(f"load average after: {report['load_average_after']}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
