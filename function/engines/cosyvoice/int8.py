"""The int8 LLM (``int8`` and ``fast`` precisions): weight-only int8 linear layers.

Each linear layer of the decoder-only transformer (run once per speech token, the rest once per
sentence) and the output layer keeps its weight as int8 with one scale per output row (symmetric,
``round(w / scale)``, ``scale = max |row| / 127`` rounded to bfloat16) and multiplies with
``torch._weight_int8pack_mm``: the activations in bfloat16, the int8 weights read as they are.
Nothing is packed (fbgemm's dynamic int8 layers, used before, repacked the weights at every load:
~0.7 s at full size), so the weights ``convert`` writes (``int8_state``: each layer's q, k and v
already fused, the output layer too) are memory-mapped straight from the file; a directory
without that file quantises the fp32 LM at load with the same arithmetic and result
(``to_int8``). Per-row scales and bfloat16 activations are also closer to fp32 than fbgemm's
per-tensor scale and 8-bit activations (docs/cosyvoice.md).

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

# The int8 LM as the runtime runs it (``int8_state``). Converts before this one wrote
# ``llm-int8-rows`` (q, k and v apart, no output layer): no longer read, the LM is quantised at load.
INT8_NAME = "llm-int8-fused"
# ``_weight_int8pack_mm`` crashes (segfault, torch 2.13, AMD Zen 4) on an int8 weight mapped 8
# bytes off a multiple of 64; ``convert`` aligns its files' tensors to this, and the load checks.
ALIGNMENT = 64
# An attention's projections that ``fuse_qkv`` multiplies as one.
QKV = ("linear_q", "linear_k", "linear_v")


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


def to_int8(lm: TransformerLM) -> None:
    """``lm`` as the int8 precisions run it, computed from its fp32 weights: the decoder-only
    transformer's linear layers int8 (``quantize``), each layer's q, k and v one product
    (``fuse_qkv``), and the output layer int8, read at every token too (17 MB in fp32, 4 MB in
    int8). The output layer's fp32 file pages, read once for that, are dropped."""
    quantize(lm.llm)
    fuse_qkv(lm)
    fp32 = FilePages([lm.llm_decoder.weight])
    lm.llm_decoder = Int8Linear.quantized(lm.llm_decoder)
    fp32.release()


def _fused_part(name: str) -> bool:
    """``name`` is a q, k or v projection: a view of its layer's fused weights."""
    return name.rpartition(".")[2] in QKV


def int8_state(lm: TransformerLM) -> dict[str, torch.Tensor]:
    """The int8 tensors of ``to_int8``'s ``lm`` as ``convert`` writes them: ``{layer}.int8`` and
    ``{layer}.scales`` of each int8 layer, q, k and v as each layer's fused ``qkv.{index}``."""
    state = {}
    layers = [(n, m) for n, m in lm.named_modules() if isinstance(m, Int8Linear) and not _fused_part(n)]
    layers += [(f"qkv.{index}", fused) for index, fused in enumerate(lm.qkv)]
    for name, layer in layers:
        state[f"{name}.int8"], state[f"{name}.scales"] = layer.weight, layer.scales
        if name.startswith("qkv.") and layer.bias is not None:
            state[f"{name}.bias"] = layer.bias
    return state


def _mapped(name: str, state: dict[str, torch.Tensor], shape: torch.Size) -> tuple[torch.Tensor, ...]:
    """``name``'s int8 weight and scales from ``state``, checked: the model's shape, aligned."""
    weight, scales = state[f"{name}.int8"], state[f"{name}.scales"]
    if (weight.dtype, scales.dtype) != (torch.int8, torch.bfloat16) or (
        weight.shape != shape or scales.shape != weight.shape[:1]
    ):
        raise EngineLoadError(f"{INT8_NAME}: {name} does not match the model (run convert again)")
    if weight.data_ptr() % ALIGNMENT:
        raise EngineLoadError(f"{INT8_NAME}: {name} is not {ALIGNMENT}-byte aligned (run convert again)")
    return weight, scales


def load_int8(lm: TransformerLM, state: dict[str, torch.Tensor]) -> None:
    """``to_int8`` with ``int8_state``'s tensors as they are (memory-mapped from ``convert``'s
    file): the same layers holding the same values, without computing them; every layer must be
    there, and nothing else."""
    linears = [(f"llm.{n}", m) for n, m in _linears(lm.llm) if not _fused_part(n)]
    linears.append(("llm_decoder", lm.llm_decoder))
    attentions = [layer.self_attn for layer in lm.llm.encoders]
    expected = {f"{name}.{part}" for name, _ in linears for part in ("int8", "scales")}
    for index, attention in enumerate(attentions):
        expected |= {f"qkv.{index}.int8", f"qkv.{index}.scales"}
        if any(getattr(attention, part).bias is not None for part in QKV):
            expected.add(f"qkv.{index}.bias")
    if set(state) != expected:
        raise EngineLoadError(f"{INT8_NAME}: layers do not match the model (run convert again)")
    for name, layer in linears:
        _replace(lm, name, Int8Linear(*_mapped(name, state, layer.weight.shape), layer.bias))
    lm.qkv = []
    for index, attention in enumerate(attentions):
        group = [getattr(attention, part) for part in QKV]
        sizes = [layer.out_features for layer in group]
        weight, scales = _mapped(f"qkv.{index}", state, torch.Size((sum(sizes), group[0].in_features)))
        bias = state.get(f"qkv.{index}.bias")
        if bias is not None and (bias.dtype, bias.shape) != (torch.float32, weight.shape[:1]):
            raise EngineLoadError(f"{INT8_NAME}: qkv.{index}.bias is not the model's (run convert again)")
        lm.qkv.append(Int8Linear(weight, scales, bias))
        # The separate projections become views of the fused weights, as ``concatenated`` leaves them.
        views = zip(group, weight.split(sizes), scales.split(sizes), strict=True)
        for part, (layer, rows, row_scales) in zip(QKV, views, strict=True):
            setattr(attention, part, Int8Linear(rows, row_scales, layer.bias))


def fuse_qkv(lm: TransformerLM) -> None:
    """Give ``lm`` (its LM already int8) one product for each layer's q, k and v; the separate
    weights' file pages, read once to concatenate them, are dropped."""
    projections = [[getattr(layer.self_attn, part) for part in QKV] for layer in lm.llm.encoders]
    if not all(isinstance(layer, Int8Linear) for group in projections for layer in group):
        raise ValueError("fuse_qkv needs the int8 LM (quantize first)")
    unfused = FilePages(layer.weight for group in projections for layer in group)
    lm.qkv = [Int8Linear.concatenated(group) for group in projections]
    unfused.release()
