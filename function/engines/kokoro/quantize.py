"""Static quantisation of the decoder's convolutions: build time only (``assets.py``), never at run time.

The int8 export quantises every convolution's input at run time (``DynamicQuantizeLinear``), then
runs ``ConvInteger`` with uint8 weights: onnxruntime has no fast kernel for that pair, and the
decoder's convolutions over ~50 000 steps are most of the time of a request. Here each of those
convolutions becomes a plain ``Conv`` again (its weights dequantised exactly as the export stored
them), and onnxruntime's ``quantize_static`` re-quantises it in QDQ form: 7-bit int8 weights
(``files.STATIC_WEIGHT_BITS``) per output channel, uint8 activations with scales calibrated on
real Mandarin and English phoneme inputs. onnxruntime fuses each QDQ group into ``QLinearConv``
(done here once, see ``optimise``), which runs on VNNI at several times the rate, and correctly on
CPUs without it (tests/kokoro/test_without_vnni.py).

Left as they are (dynamic, exact to today's output):

- the text encoder's and prosody predictor's convolutions (``/encoder/``): they run at token and
  frame rate (a few hundred steps, cheap) and set durations and pitch, so leaving them keeps every
  duration, and so every audio length, identical to today's;
- ``conv_post``, the export's one float convolution, whose output goes through ``exp()`` into the
  iSTFT's magnitudes: a static scale there clipped the waveform (peak 1.29, log-mel difference
  8.8 dB where the rest measured 3.2 dB);
- the tiny 1-channel pitch/noise convolutions (``F0_conv``, ``N_conv``, ``noise_convs``) and the
  ``asr_res`` projection, which cost nothing.

Imports onnx (build time only): ``pip install onnx``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

# Calibration text: neither the engine's tests nor the quality checks use these sentences. Loud
# (exclamations) and long ones are there so the calibrated ranges cover them.
CALIBRATION_ZH = (
    "春天来了，公园里的花都开了，孩子们在草地上奔跑。",
    "请注意！列车即将进站，请站在黄线以外排队候车。",
    "他说话的声音很轻，好像怕吵醒睡着的婴儿。",
    "这家餐厅的菜又便宜又好吃，周末总是排长队。",
    "我们应该珍惜时间，努力学习，为将来打下坚实的基础，也要照顾好自己的身体，"
    "因为只有健康的身体才能支持我们走得更远。",
    "快跑啊！大雨马上就要下来了！",
)
CALIBRATION_EN = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Wow! That was absolutely incredible, I can't believe we won the championship!",
    "Please remember to bring your passport and boarding pass to the gate.",
)
CALIBRATION_VOICES_ZH = ("zf_xiaobei", "zm_yunjian", "zf_xiaoyi")
CALIBRATION_VOICES_EN = ("af_heart", "bm_george")

_KEPT_DYNAMIC = ("conv_post", "noise_convs", "F0_conv", "N_conv", "asr_res")


def statically_quantised(name: str) -> bool:
    """Whether the export's convolution node ``name`` gets a static scale (see the module doc)."""
    return name.startswith("/decoder/") and not any(part in name for part in _KEPT_DYNAMIC)


def dequantize_convs(model: Any) -> list[str]:
    """Turn each ``DynamicQuantizeLinear -> ConvInteger -> [Add bias] -> Cast -> Mul`` group of the
    export whose node is ``statically_quantised`` into one float ``Conv`` with the same weights;
    returns the new nodes' names. ``model`` is an ``onnx.ModelProto``, changed in place."""
    from onnx import helper, numpy_helper

    from function.engines.kokoro.onnx_graph import Graph, replace

    graph = model.graph
    g = Graph(graph)

    def array(name: str) -> np.ndarray:
        value = g.constant(name)
        if value is None:
            raise ValueError(f"kokoro quantize: {name} is not a constant")
        return value

    def only_consumer(tensor: str, op_type: str) -> Any:
        node = g.only(tensor, op_type)
        if node is None:
            found = [n.op_type for n in g.consumers.get(tensor, [])]
            raise ValueError(f"kokoro quantize: {tensor} feeds {found}, expected one {op_type}")
        return node

    replaced: dict[int, list[Any]] = {}  # the group's ConvInteger -> nothing, its last Mul -> the Conv
    convs: list[str] = []
    for node in graph.node:
        if node.op_type != "ConvInteger" or not statically_quantised(node.name):
            continue
        quantize = g.producer[node.input[0]]
        weights = array(node.input[1]).astype(np.float32)
        zero = array(node.input[3]).astype(np.float32) if len(node.input) > 3 and node.input[3] else 0.0
        after = g.consumers[node.output[0]][0]
        bias = None
        if after.op_type == "Add":  # the bias, quantised at run time from the float initializer
            bias_quant = g.producer[after.input[1]]  # Reshape <- Cast <- Floor <- Div(bias, scale)
            for _ in range(3):
                bias_quant = g.producer[bias_quant.input[0]]
            bias = array(bias_quant.input[0])
            after = only_consumer(after.output[0], "Cast")
        elif after.op_type != "Cast":
            raise ValueError(f"kokoro quantize: {node.name} feeds {after.op_type}, expected Add or Cast")
        rescale = only_consumer(after.output[0], "Mul")
        scales = g.producer[rescale.input[1]]  # Mul(input scale, weight scale)
        weight_scale = array(scales.input[1])
        inputs = [quantize.input[0], f"{node.name}/W"]
        graph.initializer.append(numpy_helper.from_array((weights - zero) * weight_scale, inputs[1]))
        if bias is not None:
            inputs.append(f"{node.name}/B")
            graph.initializer.append(numpy_helper.from_array(bias.astype(np.float32), inputs[2]))
        conv = helper.make_node("Conv", inputs, [rescale.output[0]], name=node.name.removesuffix("_quant"))
        conv.attribute.extend(node.attribute)
        replaced[id(rescale)] = [conv]
        replaced[id(node)] = []
        convs.append(conv.name)
    replace(model, replaced)
    return convs


def calibration_feeds(model_dir: Path) -> list[dict[str, np.ndarray]]:
    """Model inputs for the calibration sentences, read by each calibration voice in turn."""
    from function.engines.kokoro.engine import KokoroEngine

    engine = KokoroEngine(model_dir, static=False)
    engine.load()
    feeds = []
    for texts, voices in ((CALIBRATION_ZH, CALIBRATION_VOICES_ZH), (CALIBRATION_EN, CALIBRATION_VOICES_EN)):
        for number, text in enumerate(texts):
            voice = voices[number % len(voices)]
            feeds.extend(engine.feed(engine.phonemes(p, voice), voice, 1.0) for p in engine.pieces(text))
    return feeds


def quantize(source: str | bytes, model_dir: Path, dest: Path) -> int:
    """Write the statically quantised model of ``source`` (the int8 export) to ``dest``, calibrated
    with the voices of ``model_dir``; returns how many convolutions it quantised."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from function.engines.kokoro import fuse

    model = onnx.load_model_from_string(source) if isinstance(source, bytes) else onnx.load(source)
    convs = dequantize_convs(model)
    fuse.instance_norms(model)
    fuse.squares(model)
    feeds = calibration_feeds(model_dir)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory() as workdir:
        floats, qdq = Path(workdir) / "float-convs.onnx", Path(workdir) / "qdq.onnx"
        onnx.save(model, floats)
        quantize_static(
            str(floats),
            str(qdq),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            nodes_to_quantize=convs,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # 7-bit weights ([-64, 64]): without VNNI, MLAS multiplies u8 x s8 with VPMADDUBSW, whose
            # int16 sum of two products saturates past 2 x 127 x 255; 2 x 64 x 255 cannot.
            reduce_range=True,
            # Per tensor, the min and max over every calibration input: a loud input sets the range.
            calibrate_method=CalibrationMethod.MinMax,
        )
        optimise(qdq, dest)
    return len(convs)


def optimise(source: Path, dest: Path) -> None:
    """``source`` as onnxruntime's extended-level graph optimisations leave it (QDQ groups fused into
    ``QLinearConv``, ``MatMulIntegerToFloat``, ...), so each cold start skips that work: session
    creation took ~0.4-0.7 s less, inference the same time, the same output to the bit. The layout
    (NCHWc) transformations that depend on the CPU are left to each session."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(dest)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
