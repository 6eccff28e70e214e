"""Layers that share an input, stacked into one matrix in the converted files.

The flow's attentions (q, k and v, bfloat16) and the int8 LM's (q, k and v's int8 weights and
scales) each run as one product (``flow.Attention.fuse_projections``, ``int8.fuse_qkv``).
``convert`` writes each stacked matrix once, at image build (``stack``); the load takes the
separate layers' tensors as views of it (``unstack``), so nothing is copied at load: stacking
there read and copied 94 MB of weights at every start.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Stacking:
    """Which layers (``parts``) of a module become one (``into``), and which of their tensors."""

    parts: Sequence[str]
    into: str
    tensors: Sequence[str]


# The flow U-Net's attentions (bfloat16 weights, no bias) and the int8 LM's (``int8.py``).
FLOW_QKV = Stacking(("to_q", "to_k", "to_v"), "to_qkv", ("weight",))
LLM_QKV = Stacking(("linear_q", "linear_k", "linear_v"), "linear_qkv", ("int8", "scales"))


def stack(state: dict[str, torch.Tensor], prefixes: Iterable[str], how: Stacking) -> None:
    """In ``state``, replace each module's (by prefix) separate ``parts`` by the stacked one."""
    for prefix in prefixes:
        for tensor in how.tensors:
            parts = [state.pop(f"{prefix}.{part}.{tensor}") for part in how.parts]
            state[f"{prefix}.{how.into}.{tensor}"] = torch.cat(parts)


def unstack(state: dict[str, torch.Tensor], how: Stacking) -> dict[str, dict[str, torch.Tensor]]:
    """The inverse of ``stack``, in place, with views: ``state`` gets each part's tensors as views
    of the stacked ones (equal parts), which are returned by module prefix and tensor name."""
    stacked: dict[str, dict[str, torch.Tensor]] = {}
    for tensor in how.tensors:
        suffix = f".{how.into}.{tensor}"
        for key in [key for key in state if key.endswith(suffix)]:
            prefix = key.removesuffix(suffix)
            whole = state.pop(key)
            stacked.setdefault(prefix, {})[tensor] = whole
            for part, view in zip(how.parts, whole.chunk(len(how.parts)), strict=True):
                state[f"{prefix}.{part}.{tensor}"] = view
    return stacked
