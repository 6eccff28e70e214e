"""Fewer passes over the decoder's activations: build time only (``quantize.py``), never at run time.

After the static quantisation the decoder's convolutions run near the CPU's int8 rate, and what is
left is the elementwise work between them: the export spells each of the 58 adaptive instance
norms as nine operators (two means, a subtraction, a square, a square root, a division, then the
style's scale and shift), each a full pass over tensors of up to 128 channels x 50 000 steps. Here:

- ``instance_norms``: each ``(1 + gamma) * (x - mean) / sqrt(var + eps) + beta`` over the time axis
  becomes one ``InstanceNormalization`` whose per-channel scale and bias are the style's
  ``1 + gamma`` and ``beta`` (onnxruntime's kernel normalises one channel's row while it is in
  cache): the same arithmetic, to float rounding;
- ``squares``: ``Pow(s, 2)`` (the Snake activations' ``sin(a x) ** 2``) becomes ``Mul(s, s)``.

Both leave the float model's output as it was to ~1e-6 (the static model is then calibrated and
quantised as before). Tried and not kept: the source's ``STFT`` as a convolution with the DFT's
filters (4 % faster): its spectrum matched to 1e-6, but the DC and Nyquist bins' imaginary parts,
rounding noise in onnxruntime's ``STFT``, became exact zeros, so the phase the vocoder reads there
(atan2) stopped flipping between +pi and -pi, and the audio moved 4.4 dB (log-mel) from the int8
export's where the rest of the static model is 3.1 dB away (docs/kokoro.md).

The engine runs batch 1, so the norms' scale and bias are the style's rows flattened. Imports onnx.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from function.engines.kokoro.onnx_graph import Graph, replace

# Only the decoder's norms: the prosody predictor's run at frame rate (cheap) and set the pitch.
_SCOPE = "/decoder/"


def instance_norms(model: Any) -> int:
    """Rewrite the decoder's adaptive instance norms (see the module doc); returns how many."""
    from onnx import helper, numpy_helper

    g = Graph(model.graph)
    flat = "fuse/flat"
    model.graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), flat))
    replaced: dict[int, list[Any]] = {}
    for mean in list(model.graph.node):
        match = _adain(g, mean) if mean.op_type == "ReduceMean" and mean.name.startswith(_SCOPE) else None
        if match is None:
            continue
        x, eps, styled = match
        for scale, shift, last in styled:
            name = last.name.rsplit("/", 1)[0] + "/InstanceNormalization"
            # In the last node's place: the style's scale and shift are computed after the first mean.
            replaced[id(last)] = [
                helper.make_node("Reshape", [scale, flat], [f"{name}/scale"], name=f"{name}/scale"),
                helper.make_node("Reshape", [shift, flat], [f"{name}/bias"], name=f"{name}/bias"),
                helper.make_node(
                    "InstanceNormalization",
                    [x, f"{name}/scale", f"{name}/bias"],
                    list(last.output),
                    name=name,
                    epsilon=eps,
                ),
            ]
    replace(model, replaced)
    return len(replaced)


def _adain(g: Graph, mean: Any) -> tuple[str, float, list[tuple[str, str, Any]]] | None:
    """``(x, eps, [(1 + gamma, beta, last node), ...])`` when ``mean`` starts the export's spelling
    of ``(1 + gamma) * InstanceNorm(x) + beta`` over the last axis of a [1, C, T] tensor, else None.
    Where several norms read the same ``x`` the export computes the statistics once and each
    applies its own style: one entry each."""
    x = mean.input[0]
    if not _last_axis(g, mean):
        return None
    sub = g.only(mean.output[0], "Sub")
    if sub is None or list(sub.input) != [x, mean.output[0]]:
        return None
    centred = g.consumers.get(sub.output[0], [])
    square = next((n for n in centred if n.op_type == "Mul" and list(n.input) == [sub.output[0]] * 2), None)
    divide = next((n for n in centred if n.op_type == "Div" and n.input[0] == sub.output[0]), None)
    if square is None or divide is None or len(centred) != 2:
        return None
    var = g.only(square.output[0], "ReduceMean")
    if var is None or not _last_axis(g, var):
        return None
    add_eps = g.only(var.output[0], "Add")
    eps = None if add_eps is None else g.constant(add_eps.input[1])
    root = None if add_eps is None else g.only(add_eps.output[0], "Sqrt")
    if eps is None or eps.size != 1 or root is None or divide.input[1] != root.output[0]:
        return None
    styled = []
    for scale_mul in g.consumers.get(divide.output[0], []):
        match = _styled(g, divide.output[0], scale_mul)
        if match is None:
            return None
        styled.append(match)
    return (x, float(eps.reshape(())), styled) if styled else None


def _styled(g: Graph, normed: str, scale_mul: Any) -> tuple[str, str, Any] | None:
    """``(1 + gamma, beta, last node)`` when ``scale_mul`` starts ``(1 + gamma) * normed + beta``
    with gamma and beta the [1, C, 1] halves of the style's projection (Unsqueeze -> Split)."""
    if scale_mul.op_type != "Mul" or normed not in scale_mul.input:
        return None
    scale = scale_mul.input[0] if scale_mul.input[1] == normed else scale_mul.input[1]
    shift_add = g.only(scale_mul.output[0], "Add")
    if shift_add is None:
        return None
    shift = shift_add.input[1] if shift_add.input[0] == scale_mul.output[0] else shift_add.input[0]
    one_plus = g.made_by(scale, "Add")
    split = g.made_by(shift, "Split")
    if one_plus is None or split is None or g.made_by(one_plus.input[0], "Split") is not split:
        return None
    return scale, shift, shift_add


def _last_axis(g: Graph, reduce: Any) -> bool:
    """A keepdims ``ReduceMean`` over axis 2 (the time axis of [N, C, T])."""
    axes = g.constant(reduce.input[1]) if len(reduce.input) > 1 else None
    keepdims = next((a.i for a in reduce.attribute if a.name == "keepdims"), 1)
    return axes is not None and axes.tolist() in ([2], [-1]) and keepdims == 1


def squares(model: Any) -> int:
    """``Pow(s, 2)`` as ``Mul(s, s)`` in the decoder; returns how many."""
    from onnx import helper

    g = Graph(model.graph)
    replaced: dict[int, list[Any]] = {}
    for node in model.graph.node:
        if node.op_type != "Pow" or not node.name.startswith(_SCOPE):
            continue
        exponent = g.constant(node.input[1])
        if exponent is not None and exponent.size == 1 and float(exponent.reshape(())) == 2.0:
            square = helper.make_node(
                "Mul", [node.input[0]] * 2, list(node.output), name=f"{node.name}/square"
            )
            replaced[id(node)] = [square]
    replace(model, replaced)
    return len(replaced)
