"""The int8 LLM (``int8`` and ``fast`` precisions): weight-only int8 linear layers.

Each linear layer of the decoder-only transformer (run once per speech token, the rest once per
sentence) and the output layer keeps its weight as int8 with one scale per output row
(symmetric, ``round(w / scale)``, ``scale = max |row| / 127`` rounded to bfloat16) and multiplies
with ``torch._weight_int8pack_mm``: the activations in bfloat16, the int8 weights read as they
are. Nothing is packed (fbgemm's dynamic int8 layers, used before, repacked the weights at every
load: ~0.7 s at full size), so the weights ``convert`` writes to ``llm-int8-stacked.safetensors``
(each layer's q, k and v stacked, ``stacked.py``) are memory-mapped straight from the file; a
directory without that file quantises the fp32 LM at load with the same arithmetic and result.
Per-row scales and bfloat16 activations are also closer to fp32 than fbgemm's per-tensor scale
and 8-bit activations (docs/cosyvoice.md).

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
from function.engines.cosyvoice.stacked import LLM_QKV, stack, unstack

INT8_NAME = "llm-int8-stacked"
# ``_weight_int8pack_mm`` crashes (segfault, torch 2.13) on an int8 weight mapped at an address
# 8 bytes off a multiple of 64; ``convert`` aligns its files' tensors to this.
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
    def concatenated(
        cls, layers: Sequence[Int8Linear], stacked: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> Int8Linear:
        """One layer giving ``layers``' outputs side by side (they share an input): one cast of
        the input and one product instead of one each, with the same outputs bit for bit (each
        output row is its own dot product). Its weights and scales are ``stacked`` (``convert``
        stacked them), else the layers' concatenated here; the layers' become views of them, so
        nothing is held twice."""
        if any(layer.in_features != layers[0].in_features for layer in layers):
            raise ValueError("concatenated layers must share their input size")
        if stacked is None:
            weight = torch.cat([layer.weight for layer in layers])
            scales = torch.cat([layer.scales for layer in layers])
        else:
            weight, scales = stacked
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


def _linears(lm: TransformerLM) -> list[tuple[str, nn.Linear]]:
    """The decoder-only LM's linear layers by name in ``lm`` (run once per token; the rest of
    ``lm`` runs once per sentence). The output layer, read per token too, is quantised at load
    (``runtime``): its 4097 rows would misalign every int8 weight after it in the file."""
    return [(f"llm.{name}", layer) for name, layer in lm.llm.named_modules() if type(layer) is nn.Linear]


def _replace(lm: nn.Module, name: str, layer: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(lm.get_submodule(parent_name), child, layer)


def quantize(lm: TransformerLM) -> None:
    """Replace ``lm``'s linear layers (``_linears``) by int8 ones, in place; the fp32 weights'
    file pages, read once for that, are dropped."""
    linears = _linears(lm)
    fp32 = FilePages(layer.weight for _, layer in linears)
    for name, layer in linears:
        _replace(lm, name, Int8Linear.quantized(layer))
    fp32.release()


def _attentions(lm: TransformerLM) -> list[str]:
    return [f"llm.encoders.{index}.self_attn" for index in range(len(lm.llm.encoders))]


def quantized_state(lm: TransformerLM) -> dict[str, torch.Tensor]:
    """The int8 weights of a quantised ``lm``: ``{layer}.int8`` and ``{layer}.scales``, each
    attention's q, k and v stacked (``stacked.py``): what ``convert`` writes."""
    state = {}
    for name, layer in lm.named_modules():
        if isinstance(layer, Int8Linear):
            state[f"{name}.int8"] = layer.weight
            state[f"{name}.scales"] = layer.scales
    stack(state, _attentions(lm), LLM_QKV)
    return state


def load_quantized(lm: TransformerLM, state: dict[str, torch.Tensor]) -> None:
    """Replace ``lm``'s linear layers by int8 ones holding ``state``'s tensors (``quantized_state``'s,
    memory-mapped as they are), keeping their biases, and fuse q, k and v (``fuse_qkv``) on the
    stacked tensors as they are; every linear layer must be there, and nothing else."""
    state = dict(state)
    stacked = unstack(state, LLM_QKV)
    linears = _linears(lm)
    expected = {f"{name}.{part}" for name, _ in linears for part in ("int8", "scales")}
    if set(state) != expected or set(stacked) != set(_attentions(lm)):
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
    fuse_qkv(lm, [(stacked[name]["int8"], stacked[name]["scales"]) for name in _attentions(lm)])


def fuse_qkv(lm: TransformerLM, stacked: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
    """Give ``lm`` (its LM already int8) one product for each layer's q, k and v: ``stacked``,
    each layer's weights and scales as ``convert`` stacked them, else stacked here."""
    attentions = [layer.self_attn for layer in lm.llm.encoders]
    projections = [(a.linear_q, a.linear_k, a.linear_v) for a in attentions]
    if not all(isinstance(layer, Int8Linear) for group in projections for layer in group):
        raise ValueError("fuse_qkv needs the int8 LM (quantize or load_quantized first)")
    lm.qkv = [
        Int8Linear.concatenated(group, stacked[index] if stacked else None)
        for index, group in enumerate(projections)
    ]
