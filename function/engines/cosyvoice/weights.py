"""Loading checkpoints: official ``.pt`` files or the converted safetensors, memory-mapped.

Modules are built on the ``meta`` device (no memory, no random initialisation of ~436M
parameters) and then take the checkpoint's tensors as they are (``assign=True``), so the weights
stay memory-mapped from the file instead of being copied. ``strict=True`` checks that every key
matches upstream's names.
"""

from __future__ import annotations

import itertools
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from function.engines.base import EngineLoadError


def converted_path(model_dir: Path, name: str) -> Path:
    return model_dir / f"{name}.safetensors"


def load_state(model_dir: Path, name: str) -> dict[str, torch.Tensor]:
    """``name`` (llm, flow, hift, spk2info): the converted file when present, else the official .pt."""
    converted = converted_path(model_dir, name)
    if converted.is_file():
        from safetensors.torch import load_file

        return load_file(converted)
    path = model_dir / f"{name}.pt"
    if not path.is_file():
        raise EngineLoadError(f"missing {path} (and no {converted.name})")
    # mmap needs torch's zip format; very old checkpoints are read into memory instead.
    return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))


def _meta_tensors(module: nn.Module) -> list[str]:
    tensors = itertools.chain(module.named_parameters(), module.named_buffers())
    return [key for key, tensor in tensors if tensor.is_meta]


def build(factory: Callable[[], nn.Module], state: dict[str, torch.Tensor], name: str) -> nn.Module:
    """Construct ``factory()`` without initialising it and load ``state`` into it, strictly.

    A module that computes buffers when constructed (HiFT's STFT window) has them left on the
    meta device; it is then constructed again, for real, before loading.
    """
    with torch.device("meta"):
        module = factory()
    _load(module, state, name)
    if _meta_tensors(module):
        module = factory()
        _load(module, state, name)
    missing = _meta_tensors(module)
    if missing:
        raise EngineLoadError(f"{name}: not in the checkpoint: {missing[:5]}")
    return module.eval()


def _load(module: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    try:
        # load_state_dict may rewrite its argument (HiFT folds weight norm), so it gets a copy.
        module.load_state_dict(dict(state), strict=True, assign=True)
    except RuntimeError as exc:
        raise EngineLoadError(f"{name}: checkpoint does not match the model: {exc}") from exc


def load_speakers(model_dir: Path) -> dict[str, torch.Tensor]:
    """Speaker name -> x-vector (1, 192), from spk2info.safetensors or the official spk2info.pt."""
    converted = converted_path(model_dir, "spk2info")
    if converted.is_file():
        from safetensors.torch import load_file

        return load_file(converted)
    spk2info = torch.load(model_dir / "spk2info.pt", map_location="cpu", weights_only=True)
    return {name: info["embedding"] for name, info in spk2info.items()}
