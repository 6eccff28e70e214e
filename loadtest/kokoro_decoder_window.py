"""Would decoding only the frames that sound make a stream's first clause cheaper? (not a test)

    .venv/bin/python -m loadtest.kokoro_decoder_window [--model-dir models/kokoro-82m]
        [--threads 2] [--lead 6] [--tail 10] [--rounds 5] [--out FILE.json]

Kokoro renders every utterance inside silence: the predictor gives the leading pad ~18 frames
and a clause's last syllable and punctuation ~40 more, of which a few carry sound, and the decoder
(most of the time) renders all of them before ``edges`` trims them. This splits the static model
in memory into its predictor (tokens -> durations and the decoder's inputs: the aligned text
features, F0 and energy curves) and its decoder, then for each sentence decodes

* the whole: the same audio as the one model, bit for bit (checked, ``split_max_diff``);
* a window: from ``--lead`` frames before the predicted energy rises above -3 to ``--tail`` frames
  after it falls below it (the predictor still sees the whole utterance, so F0 and energy are
  the whole's);

and prints how many frames the window keeps, its audio against the whole's (loudness per 100 ms
and the mean log-mel difference over the whole's trimmed span) and both times, alternated.

It also times ``session.run`` asking only for ``durations``, to show whether onnxruntime skips the
decoder then (it does not: the whole graph runs), which is why the split is needed at all.

What it measures against: the decoder's 58 instance norms take their statistics over every frame
they are given, silence included, so a window that leaves silence out changes the scale of the
audio, not only its length. See docs/kokoro.md ("Streaming: the first clause first").
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from function.engines.kokoro import KokoroEngine
from function.engines.kokoro.chunking import fit_phonemes
from function.engines.kokoro.engine import edges
from function.engines.kokoro.files import STATIC_FILE
from function.engines.kokoro.onnx_graph import Graph
from function.local import cpu_model
from loadtest.bench_kokoro import log_mel

TEXTS = (
    ("春天来了，", "zf_xiaobei"),
    ("你好，", "zf_xiaobei"),
    ("一，", "zm_yunjian"),
    ("北京市朝阳区建国路八十八号，", "zf_xiaoyi"),
    ("今天的天气很好，我们一起去公园散步吧。", "zf_xiaoxiao"),
    ("Hello there, my friend.", "af_heart"),
)
SAMPLES_PER_FRAME = 600  # 24 kHz, 40 frames per second; F0 and energy come at twice that rate
SOUNDING = -3.0  # the predicted energy (log scale) above which a half-frame is taken as sounding
BLOCK = 2400  # 100 ms


def decoder_inputs(model: Any) -> list[str]:
    """The tensors made outside the decoder that the decoder reads (the export names its nodes
    /encoder/... and /decoder/...), in the order the decoder's code takes them: the aligned text
    features (a MatMul), then the F0 and energy curves (Reshapes, F0 first)."""
    made_by = Graph(model.graph).producer
    features: list[str] = []
    curves: list[str] = []
    for node in model.graph.node:
        if not node.name.startswith("/decoder/"):
            continue
        for tensor in node.input:
            maker = made_by.get(tensor)
            if maker is None or not maker.name.startswith("/encoder/"):
                continue
            if maker.op_type == "MatMul" and tensor not in features:
                features.append(tensor)
            elif maker.op_type == "Reshape" and tensor not in curves:
                curves.append(tensor)
    if len(features) != 1 or len(curves) != 2:
        raise SystemExit(f"unexpected decoder inputs: {features} {curves}")
    return [*features, *curves]


def split(engine: KokoroEngine) -> tuple[Any, Any, list[str]]:
    """The predictor's and the decoder's sessions (with the engine's own session options) and the
    names of the tensors between them."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    from onnx.utils import Extractor

    model = onnx.load(engine.model_dir / STATIC_FILE)
    inputs = decoder_inputs(model)
    graph_inputs = [i.name for i in model.graph.input]
    for name in inputs:  # the extractor wants a type for every cut tensor
        rank = 3 if name == inputs[0] else 2
        model.graph.value_info.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * rank))
    extractor = Extractor(model)
    predictor = extractor.extract_model(graph_inputs, ["durations", *inputs])
    decoder = extractor.extract_model([*inputs, "style"], ["audio"])

    def session(part: Any) -> Any:
        options = engine._session_options(ort)
        return ort.InferenceSession(part.SerializeToString(), options, providers=["CPUExecutionProvider"])

    return session(predictor), session(decoder), inputs


def loudness(audio: np.ndarray) -> list[float]:
    blocks = audio[: len(audio) // BLOCK * BLOCK].reshape(-1, BLOCK)
    return [round(float(10 * np.log10(np.mean(b**2) + 1e-10)), 1) for b in blocks]


def seconds(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


class Split:
    """The static model's predictor and decoder as two sessions, and the names between them."""

    def __init__(self, engine: KokoroEngine) -> None:
        self.engine = engine
        self.predictor, self.decoder, self.names = split(engine)
        self.decoder_names = [i.name for i in self.decoder.get_inputs()]

    def predict(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(["durations", *self.names], self.predictor.run(None, feed), strict=True))

    def decode(self, predicted: dict[str, np.ndarray], style: np.ndarray, start: int, end: int) -> np.ndarray:
        """The decoder over frames [start, end) (F0 and energy come two per frame)."""
        features, f0, energy = self.names
        window = {
            features: predicted[features][:, :, start:end],
            f0: predicted[f0][:, 2 * start : 2 * end],
            energy: predicted[energy][:, 2 * start : 2 * end],
        }
        feed = {name: window.get(name, style) for name in self.decoder_names}
        return self.decoder.run(None, feed)[0].reshape(-1)

    def measure(self, text: str, voice: str, lead: int, tail: int, rounds: int) -> dict[str, Any]:
        engine = self.engine
        feed = engine.feed(fit_phonemes(engine.phonemes(text, voice))[0], voice, 1.0)
        whole_model = engine._session.run(None, feed)[0].reshape(-1)
        predicted = self.predict(feed)
        frames = predicted[self.names[0]].shape[2]
        sounding = np.nonzero(predicted[self.names[2]].reshape(-1) > SOUNDING)[0]
        start = max(0, int(sounding[0]) // 2 - lead)
        end = min(frames, (int(sounding[-1]) + 2) // 2 + tail)
        whole = self.decode(predicted, feed["style"], 0, frames)
        part = self.decode(predicted, feed["style"], start, end)
        windowed = np.zeros_like(whole)
        windowed[start * SAMPLES_PER_FRAME : start * SAMPLES_PER_FRAME + len(part)] = part
        lo, hi = edges(whole, engine.sample_rate)
        a, b = whole[lo:hi], windowed[lo:hi]
        calls = {
            "whole_model_s": lambda: engine._session.run(None, feed),
            "durations_only_s": lambda: engine._session.run(["durations"], feed),
            "predictor_and_window_s": lambda: self.decode(self.predict(feed), feed["style"], start, end),
        }
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(rounds):  # alternated
            for name, call in calls.items():
                times[name].append(seconds(call))
        return {
            "text": text,
            "voice": voice,
            "frames": frames,
            "window": [start, end],
            "kept": round((end - start) / frames, 2),
            "split_max_diff": float(np.abs(whole - whole_model).max()),
            "mel_db": round(float(np.abs(log_mel(a) - log_mel(b)).mean()), 2),
            "loudness_whole_db": loudness(a),
            "loudness_window_db": loudness(b),
            **{name: round(statistics.median(v), 3) for name, v in times.items()},
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=Path("models/kokoro-82m"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lead", type=int, default=6, help="frames kept before the sound")
    parser.add_argument("--tail", type=int, default=10, help="frames kept after the sound")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    engine = KokoroEngine(args.model_dir, args.threads, static=True)
    engine.load()
    model = Split(engine)
    rows = []
    for text, voice in TEXTS:
        row = model.measure(text, voice, args.lead, args.tail, args.rounds)
        rows.append(row)
        pairs = zip(row["loudness_whole_db"], row["loudness_window_db"], strict=True)
        print(
            f"{text[:10]:12} frames {row['frames']:4d} window {row['window']} ({row['kept']:.0%}) "
            f"split diff {row['split_max_diff']:.1g}, mel {row['mel_db']} dB; "
            f"whole {row['whole_model_s']} s, durations only {row['durations_only_s']} s, "
            f"predictor + window {row['predictor_and_window_s']} s\n"
            f"{'':12} loudness change per 100 ms (dB): {[round(w - o, 1) for o, w in pairs]}"
        )
    result = {"cpu": cpu_model(), "threads": args.threads, "lead": args.lead, "tail": args.tail, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
