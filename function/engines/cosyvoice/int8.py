"""The int8 LLM (``int8`` and ``fast`` precisions): the decoder-only transformer's linear layers
dynamically quantised to int8, as ``torch.ao.quantization.quantize_dynamic`` does it.

Only the decoder-only LM: it runs once per speech token, the rest once per sentence. ``convert``
quantises once and writes ``llm-int8.safetensors`` (each layer's int8 weight with its scale and
zero point); loading then builds the quantised layers from those bytes and never touches the
0.77 GB of fp32 LM weights, which keeps their pages out of the process (peak RSS) and the ~2 s of
quantisation out of the start. A model directory without the file is quantised at load, with the
same arithmetic and result.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.ao.nn.quantized import dynamic

from function.engines.base import EngineLoadError

INT8_NAME = "llm-int8"


def int8_path(model_dir: Path) -> Path:
    return model_dir / f"{INT8_NAME}.safetensors"


def quantize(lm: nn.Module) -> None:
    """Replace ``lm``'s linear layers by int8 dynamic ones, in place (a deep copy of the fp32 LM
    first, the default, would add ~0.8 GB of peak RSS at full size only to be replaced)."""
    torch.ao.quantization.quantize_dynamic(lm, {nn.Linear}, dtype=torch.qint8, inplace=True)


def quantized_state(lm: nn.Module) -> dict[str, torch.Tensor]:
    """The int8 weights of a quantised ``lm``: ``{layer}.int8``, ``.scale`` and ``.zero_point``."""
    state = {}
    for name, layer in lm.named_modules():
        if isinstance(layer, dynamic.Linear):
            weight, _ = layer._weight_bias()
            state[f"{name}.int8"] = weight.int_repr()
            state[f"{name}.scale"] = torch.tensor(weight.q_scale(), dtype=torch.float64)
            state[f"{name}.zero_point"] = torch.tensor(weight.q_zero_point(), dtype=torch.int64)
    return state


def load_quantized(lm: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Replace ``lm``'s linear layers by int8 ones built from ``state`` (``quantized_state``'s),
    keeping their biases; every linear layer must have its weights there and nothing else."""
    linears = [(name, layer) for name, layer in lm.named_modules() if type(layer) is nn.Linear]
    expected = {f"{name}.{part}" for name, _ in linears for part in ("int8", "scale", "zero_point")}
    if set(state) != expected:
        raise EngineLoadError(f"{INT8_NAME}: layers do not match the model (run convert again)")
    for name, layer in linears:
        weight = torch._make_per_tensor_quantized_tensor(
            state[f"{name}.int8"], state[f"{name}.scale"].item(), int(state[f"{name}.zero_point"].item())
        )
        # Built 1x1 and then given the layer's weights: at full size the constructor would
        # quantise and pack a zero matrix of the layer's shape first (~0.8 s for the whole LM).
        quantized = dynamic.Linear(1, 1, bias_=layer.bias is not None, dtype=torch.qint8)
        quantized.in_features, quantized.out_features = layer.in_features, layer.out_features
        quantized.set_weight_bias(weight, layer.bias)
        parent_name, _, child = name.rpartition(".")
        setattr(lm.get_submodule(parent_name), child, quantized)
