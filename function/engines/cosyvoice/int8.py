"""The int8 LLM (``int8`` and ``fast`` precisions): weight-only int8 linear layers.

Each linear layer of the decoder-only transformer (run once per speech token, the rest once per
sentence) and the output layer keeps its weight as int8 with one scale per output row
(symmetric, ``round(w / scale)``, ``scale = max |row| / 127`` rounded to bfloat16) and multiplies
with ``torch._weight_int8pack_mm``: the activations in bfloat16, the int8 weights read as they
are. Nothing is packed (fbgemm's dynamic int8 layers, used before, repacked the weights at every
load: ~0.7 s at full size), so the weights ``convert`` writes to ``llm-int8-rows.safetensors``
are memory-mapped straight from the file; a directory without that file quantises the fp32 LM
at load with the same arithmetic and result. Per-row scales and bfloat16 activations are also
closer to fp32 than fbgemm's per-tensor scale and 8-bit activations (docs/cosyvoice.md).

``torch._weight_int8pack_mm`` is private (torchao and gpt-fast use it for the same purpose); it
replaces torch's quantized tensors, whose creation functions torch 2.13 deprecates for removal.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from function.engines.base import EngineLoadError
from function.engines.cosyvoice.llm import TransformerLM
from function.engines.cosyvoice.pages import FilePages

INT8_NAME = "llm-int8-rows"
# ``_weight_int8pack_mm`` crashes (segfault, torch 2.13, AMD Zen 4) on an int8 weight mapped 8
# bytes off a multiple of 64; ``convert`` aligns its files' tensors to this, and the load checks.
ALIGNMENT = 64


class Int8Linear(nn.Module):
    """``nn.Linear`` with an int8 weight (out, in) and a bfloat16 scale per output row."""

    def __init__(self, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.weight, self.scales, self.bias = weight, scales, bias

    @classmethod
    def quantized(cls, layer: nn.Linear) -> Int8Linear:
        weight = layer.weight.detach().float()
        # The scale is rounded to bfloat16 first, so the int8 values are those of the scale used.
        scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12).to(torch.bfloat16)
        int8 = torch.round(weight / scales.float().unsqueeze(1)).clamp(-127, 127).to(torch.int8)
        return cls(int8, scales, layer.bias)

    @classmethod
    def concatenated(cls, layers: Sequence[Int8Linear]) -> Int8Linear:
        """One layer giving ``layers``' outputs side by side (they share an input): one cast of
        the input and one product instead of one each, with the same outputs bit for bit (each
        output row is its own dot product). The layers' weights become views of the new one, so
        nothing is held twice."""
        if any(layer.in_features != layers[0].in_features for layer in layers):
            raise ValueError("concatenated layers must share their input size")
        weight = torch.cat([layer.weight for layer in layers])
        scales = torch.cat([layer.scales for layer in layers])
        bias = None
        if any(layer.bias is not None for layer in layers):
            # A missing bias is zeros: bfloat16 + 0.0 in float32 is the cast that layer would do.
            bias = torch.cat(
                [
                    layer.bias.detach() if layer.bias is not None else torch.zeros(layer.out_features)
                    for layer in layers
                ]
            )
        sizes = [layer.out_features for layer in layers]
        for layer, rows, row_scales in zip(layers, weight.split(sizes), scales.split(sizes), strict=True):
            layer.weight, layer.scales = rows, row_scales
        return cls(weight, scales, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
        y = torch._weight_int8pack_mm(flat, self.weight, self.scales).view(*x.shape[:-1], -1)
        # bfloat16 + float32 bias is added in float32: one operation where casting first is two
        # (at one token per step, each operation's fixed cost counts: 86 layers per token).
        return y.to(x.dtype) if self.bias is None else y + self.bias


def _linears(lm: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(name, layer) for name, layer in lm.named_modules() if type(layer) is nn.Linear]


def _replace(lm: nn.Module, name: str, layer: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(lm.get_submodule(parent_name), child, layer)


def quantize(lm: nn.Module) -> None:
    """Replace ``lm``'s linear layers by int8 ones, in place."""
    for name, layer in _linears(lm):
        _replace(lm, name, Int8Linear.quantized(layer))


def quantized_state(lm: nn.Module) -> dict[str, torch.Tensor]:
    """The int8 weights of a quantised ``lm``: ``{layer}.int8`` and ``{layer}.scales``."""
    state = {}
    for name, layer in lm.named_modules():
        if isinstance(layer, Int8Linear):
            state[f"{name}.int8"] = layer.weight
            state[f"{name}.scales"] = layer.scales
    return state


def load_quantized(lm: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Replace ``lm``'s linear layers by int8 ones holding ``state``'s tensors (``quantized_state``'s,
    memory-mapped as they are), keeping their biases; every linear layer must be there, and nothing
    else."""
    linears = _linears(lm)
    expected = {f"{name}.{part}" for name, _ in linears for part in ("int8", "scales")}
    if set(state) != expected:
        raise EngineLoadError(f"{INT8_NAME}: layers do not match the model (run convert again)")
    for name, layer in linears:
        weight, scales = state[f"{name}.int8"], state[f"{name}.scales"]
        if (weight.dtype, scales.dtype) != (torch.int8, torch.bfloat16) or (
            weight.shape != layer.weight.shape or scales.shape != weight.shape[:1]
        ):
            raise EngineLoadError(f"{INT8_NAME}: {name} does not match the model (run convert again)")
        if weight.data_ptr() % ALIGNMENT:
            raise EngineLoadError(f"{INT8_NAME}: {name} is not {ALIGNMENT}-byte aligned (run convert again)")
        _replace(lm, name, Int8Linear(weight, scales, layer.bias))


def fuse_qkv(lm: TransformerLM) -> None:
    """Give ``lm`` (its LM already int8) one product for each layer's q, k and v; the separate
    weights' file pages, read once to concatenate them, are dropped."""
    attentions = [layer.self_attn for layer in lm.llm.encoders]
    projections = [(a.linear_q, a.linear_k, a.linear_v) for a in attentions]
    if not all(isinstance(layer, Int8Linear) for group in projections for layer in group):
        raise ValueError("fuse_qkv needs the int8 LM (quantize or load_quantized first)")
    unfused = FilePages(layer.weight for group in projections for layer in group)
    lm.qkv = [Int8Linear.concatenated(group) for group in projections]
    unfused.release()
