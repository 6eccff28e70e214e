"""fuse.py's rewrites on small graphs spelled as Kokoro's export spells them, run by onnxruntime
before and after: the same output, fewer operators. (The built model's counts are checked in
test_assets.py.)"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from function.engines.kokoro import fuse

C, T = 6, 200
SCOPE = "/decoder/block"


def _model(
    nodes: list[Any],
    inputs: dict[str, list[int]],
    output: tuple[str, list[int]],
    inits: dict[str, np.ndarray],
) -> Any:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs.items()],
        [helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])],
        [numpy_helper.from_array(value, name) for name, value in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: Any, feed: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options).run(None, feed)[0]


def _ops(model: Any) -> list[str]:
    return [node.op_type for node in model.graph.node]


def adain(axis: int, styles: int = 1) -> Any:
    """(1 + gamma) * (x - mean) / sqrt(var + eps) + beta, the style projected to gamma and beta,
    as the export writes it (the statistics over ``axis``); with ``styles`` > 1, that many norms of
    the same ``x``, whose statistics the export computes once, their outputs summed into ``y``."""
    n = f"{SCOPE}/adain"
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], [f"{n}/mean"], name=f"{n}/ReduceMean", keepdims=1),
        helper.make_node("Sub", ["x", f"{n}/mean"], [f"{n}/centred"], name=f"{n}/Sub"),
        helper.make_node("Mul", [f"{n}/centred", f"{n}/centred"], [f"{n}/squared"], name=f"{n}/Mul_2"),
        helper.make_node(
            "ReduceMean", [f"{n}/squared", "axes"], [f"{n}/var"], name=f"{n}/ReduceMean_2", keepdims=1
        ),
        helper.make_node("Add", [f"{n}/var", "eps"], [f"{n}/var_eps"], name=f"{n}/Add_2"),
        helper.make_node("Sqrt", [f"{n}/var_eps"], [f"{n}/std"], name=f"{n}/Sqrt"),
        helper.make_node("Div", [f"{n}/centred", f"{n}/std"], [f"{n}/normed"], name=f"{n}/Div_1"),
    ]
    for i in range(styles):
        s = f"{n}/style{i}"
        nodes += [
            helper.make_node("MatMul", ["style", f"fc{i}"], [f"{s}/h"], name=f"{s}/fc"),
            helper.make_node("Unsqueeze", [f"{s}/h", "axis2"], [f"{s}/h3"], name=f"{s}/Unsqueeze"),
            helper.make_node(
                "Split", [f"{s}/h3", "halves"], [f"{s}/gamma", f"{s}/beta"], name=f"{s}/Split", axis=1
            ),
            helper.make_node("Add", [f"{s}/gamma", "one"], [f"{s}/scale"], name=f"{s}/Add_1"),
            helper.make_node("Mul", [f"{s}/scale", f"{n}/normed"], [f"{s}/scaled"], name=f"{s}/Mul_3"),
            helper.make_node(
                "Add", [f"{s}/scaled", f"{s}/beta"], [f"{s}/y" if styles > 1 else "y"], name=f"{s}/Add_3"
            ),
        ]
    if styles > 1:
        nodes.append(
            helper.make_node("Sum", [f"{n}/style{i}/y" for i in range(styles)], ["y"], name=f"{n}/Sum")
        )
    rng = np.random.default_rng(0)
    inits = {
        "axes": np.array([axis], np.int64),
        "eps": np.array(1e-5, np.float32),
        "one": np.array(1.0, np.float32),
        "axis2": np.array([2], np.int64),
        "halves": np.array([C, C], np.int64),
        **{f"fc{i}": rng.normal(0, 0.3, (8, 2 * C)).astype(np.float32) for i in range(styles)},
    }
    return _model(nodes, {"x": [1, C, T], "style": [1, 8]}, ("y", [1, C, T]), inits)


def _adain_feed() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "x": (rng.normal(0.4, 2.0, (1, C, T))).astype(np.float32),
        "style": rng.normal(0, 1, (1, 8)).astype(np.float32),
    }


def test_an_adaptive_instance_norm_becomes_one_operator_with_the_same_output() -> None:
    model, feed = adain(axis=2), _adain_feed()
    before = _run(model, feed)
    assert fuse.instance_norms(model) == 1
    onnx.checker.check_model(model)
    assert _ops(model).count("InstanceNormalization") == 1
    assert not {"ReduceMean", "Sub", "Sqrt", "Div"} & set(_ops(model))
    after = _run(model, feed)
    np.testing.assert_allclose(after, before, atol=2e-5)
    # the statistics are per channel over time: a channel shifted and scaled normalises the same
    shifted = dict(feed, x=feed["x"] * np.array([3.0] + [1.0] * (C - 1), np.float32)[None, :, None] + 5)
    np.testing.assert_allclose(_run(model, shifted)[0, 0], after[0, 0], atol=2e-4)


def test_norms_sharing_their_statistics_become_one_operator_each() -> None:
    model, feed = adain(axis=2, styles=3), _adain_feed()
    before = _run(model, feed)
    assert fuse.instance_norms(model) == 3
    onnx.checker.check_model(model)
    assert _ops(model).count("InstanceNormalization") == 3 and "ReduceMean" not in _ops(model)
    np.testing.assert_allclose(_run(model, feed), before, atol=5e-5)


def test_a_norm_over_another_axis_is_left_as_it_is() -> None:
    model, feed = adain(axis=1), _adain_feed()
    before = _run(model, feed)
    assert fuse.instance_norms(model) == 0
    assert "InstanceNormalization" not in _ops(model)
    np.testing.assert_array_equal(_run(model, feed), before)


def test_squares_become_products_and_other_powers_stay() -> None:
    nodes = [
        helper.make_node("Sin", ["x"], ["s"], name=f"{SCOPE}/Sin"),
        helper.make_node("Pow", ["s", "two"], ["p"], name=f"{SCOPE}/Pow"),
        helper.make_node("Pow", ["p", "three"], ["y"], name=f"{SCOPE}/Pow_1"),
    ]
    inits = {"two": np.array(2.0, np.float32), "three": np.array(3.0, np.float32)}
    model = _model(nodes, {"x": [1, C, T]}, ("y", [1, C, T]), inits)
    feed = {"x": np.linspace(-4, 4, C * T, dtype=np.float32).reshape(1, C, T)}
    before = _run(model, feed)
    assert fuse.squares(model) == 1
    assert _ops(model) == ["Sin", "Mul", "Pow"]
    np.testing.assert_allclose(_run(model, feed), before, rtol=1e-6)
