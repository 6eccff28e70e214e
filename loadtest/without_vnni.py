"""Kokoro's static models on a CPU without VNNI, emulated: does the 8-bit one saturate? (not a test)

    .venv/bin/python loadtest/without_vnni.py --old models-old/kokoro-82m --new models/kokoro-82m
    qemu-x86_64 -cpu Haswell-noTSX .venv/bin/python loadtest/without_vnni.py --kernel

``--kernel`` runs one ``QLinearConv`` at its worst case (every activation 255, every weight at the
top of its range) with 8-bit and with 7-bit weights, on whatever CPU runs it, and prints the
outputs as JSON: 200 is exact, less is a saturated sum (tests/kokoro/test_without_vnni.py).

This machine has AVX-512 VNNI, Cloud Run may place an instance on a CPU without it. qemu's user
mode (Debian's qemu-user) runs this same Python and onnxruntime on an emulated Haswell (AVX2,
no VNNI: onnxruntime's MLAS then multiplies u8 x s8 with VPMADDUBSW, whose int16 pair sums can
saturate). Each static model (8-bit weights, 7-bit weights) speaks the same loud Mandarin
sentence natively and emulated; printed per model: the log-mel difference (dB) between the
emulated and the native audio, and each one's peak. One voice, one sentence: emulation is slow
(minutes). The int8 export is left out: its dynamic u8 x u8 convolutions always ran there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TEXTS = ("注意安全！前方道路正在施工，请绕行！",)
VOICE = "zf_xiaobei"


EXACT = 200  # the probe's output when no sum saturates


def saturation_probe(top_weight: int) -> list[int]:
    """The distinct outputs of one uint8 x int8 ``QLinearConv`` (64 channels, kernel 3) where every
    activation is 255 and every weight ``top_weight``, scaled so the exact result is ``EXACT``.
    Without VNNI, MLAS adds pairs of products in int16: 2 x 255 x 127 saturates, 2 x 255 x 64 not."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    channels, kernel, length = 64, 3, 8
    total = channels * kernel * 255 * top_weight
    constants = {
        "w": np.full((4, channels, kernel), top_weight, np.int8),
        "x_scale": np.array(1.0, np.float32),
        "x_zero": np.array(0, np.uint8),
        "w_scale": np.ones(4, np.float32),
        "w_zero": np.zeros(4, np.int8),
        "y_scale": np.array(total / EXACT, np.float32),
        "y_zero": np.array(0, np.uint8),
    }
    inputs = ["x", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale", "y_zero"]
    graph = helper.make_graph(
        [helper.make_node("QLinearConv", inputs, ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, channels, length])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 4, length - kernel + 1])],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    output = session.run(None, {"x": np.full((1, channels, length), 255, np.uint8)})[0]
    return sorted({int(v) for v in output.ravel()})


def feeds(model_dir: Path) -> list[dict[str, np.ndarray]]:
    from function.engines.kokoro import KokoroEngine

    engine = KokoroEngine(model_dir, 1, static=True)
    engine.load()
    return [engine.feed(engine.phonemes(text, VOICE), VOICE, 1.0) for text in TEXTS]


def run(models: dict[str, str], inputs: Path, out: Path) -> None:
    """Each model's audio for the saved feeds, on this (maybe emulated) CPU."""
    import onnxruntime as ort

    saved = np.load(inputs)
    count = len({k.split("/")[0] for k in saved.files})
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    audio = {}
    for name, path in models.items():
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        for i in range(count):
            feed = {k.split("/")[1]: saved[k] for k in saved.files if k.startswith(f"{i}/")}
            audio[f"{name}/{i}"] = session.run(None, feed)[0].reshape(-1)
    np.savez(out, **audio)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, help="a model dir with the 8-bit static model")
    parser.add_argument("--new", type=Path, help="a model dir with the 7-bit static model")
    parser.add_argument("--cpu", default="Haswell-noTSX", help="qemu's CPU model (no VNNI)")
    parser.add_argument("--kernel", action="store_true", help="the worst-case QLinearConv probe only")
    parser.add_argument("--run", nargs=3, metavar=("MODELS_JSON", "FEEDS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kernel:
        print(json.dumps({bits: saturation_probe(top) for bits, top in (("8", 127), ("7", 64))}))
        return 0
    if args.run:
        run(json.loads(args.run[0]), Path(args.run[1]), Path(args.run[2]))
        return 0
    from function.local import cpu_model
    from loadtest.bench_kokoro import log_mel

    models = {
        "static8": str(args.old / "model.static.onnx"),
        "static7": str(args.new / "model.static.onnx"),
    }
    print(f"{cpu_model()} (native) vs qemu -cpu {args.cpu}; load {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "feeds.npz"
        np.savez(inputs, **{f"{i}/{k}": v for i, f in enumerate(feeds(args.new)) for k, v in f.items()})
        outs = {}
        for where, prefix in (("native", []), ("emulated", ["qemu-x86_64", "-cpu", args.cpu])):
            outs[where] = Path(tmp) / f"{where}.npz"
            command = [
                *prefix,
                sys.executable,
                __file__,
                "--run",
                json.dumps(models),
                str(inputs),
                str(outs[where]),
            ]
            subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        native, emulated = np.load(outs["native"]), np.load(outs["emulated"])
        for key in native.files:
            # The encoder's dynamic int8 kernels differ there too, so durations (and the audio's
            # length) may shift a little, alike for both models: compare over the common length.
            a, b = native[key], emulated[key]
            n = min(len(a), len(b))
            mel = float(np.abs(log_mel(a[:n]) - log_mel(b[:n])).mean())
            print(
                f"{key:10} samples native {len(a)} emulated {len(b)}  mel difference {mel:5.2f} dB  "
                f"peak native {np.abs(a).max():.3f} emulated {np.abs(b).max():.3f}"
            )
    print(f"load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
