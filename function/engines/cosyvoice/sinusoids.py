"""Sinusoidal encodings, the three places CosyVoice v1 uses them: ESPnet's relative positions (the
transformer encoders, ``transformer.py``; the LLM's cached position keys, ``llm.py``) and matcha's
flow time embedding (``flow.py``). Each has upstream's exact arithmetic, so parity holds bit for bit.
"""

from __future__ import annotations

import math

import torch


def _frequencies(exponents: torch.Tensor, denominator: float) -> torch.Tensor:
    """10000 ** -(exponent / denominator), computed as upstream computes it."""
    return torch.exp(exponents * -(math.log(10000.0) / denominator))


def positions(values: torch.Tensor, d_model: int) -> torch.Tensor:
    """ESPnet's encoding of (possibly negative) positions (N,): (N, d_model), sin and cos interleaved."""
    angles = values.float().unsqueeze(1) * _frequencies(
        torch.arange(0, d_model, 2, dtype=torch.float32), d_model
    )
    encoding = torch.zeros(len(values), d_model)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles)
    return encoding


def relative_positions(size: int, d_model: int) -> torch.Tensor:
    """Relative positions size-1, ..., 0, ..., -(size-1): (1, 2*size-1, d_model).

    The window of upstream's ``EspnetRelPositionalEncoding`` (it precomputes 5000 positions and
    slices the centre; each position's value does not depend on that length).
    """
    return positions(torch.arange(size - 1, -size, -1, dtype=torch.float32), d_model).unsqueeze(0)


def flow_times(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """matcha's ``SinusoidalPosEmb``: (N,) times -> (N, dim) as [sin | cos]."""
    half = dim // 2
    frequencies = _frequencies(torch.arange(half, device=t.device).float(), half - 1)
    angles = scale * t.unsqueeze(1) * frequencies.unsqueeze(0)
    return torch.cat((angles.sin(), angles.cos()), dim=-1)
