"""Helpers shared by the parity tests against upstream CosyVoice."""

from __future__ import annotations

import torch

# Max abs difference allowed between the lite runtime and upstream, fp32, at every stage.
TOLERANCE = 1e-4


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Seeded random values in every float parameter and buffer.

    Upstream's init leaves biases at zero and BatchNorm statistics at 0/1, which would hide
    mistakes in how they are used; 1-D tensors get positive values so norms stay well-posed.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.is_floating_point():
                if tensor.dim() == 1:
                    tensor.copy_(torch.rand(tensor.shape, generator=gen) * 0.5 + 0.25)
                else:
                    tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.3)


def max_abs_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    return (got - want).abs().max().item()
