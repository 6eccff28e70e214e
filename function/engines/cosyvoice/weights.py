"""Loading checkpoints: official ``.pt`` files or the converted safetensors, memory-mapped.

Modules are built without random initialisation and then take the checkpoint's tensors as they
are (``assign=True``), so the weights stay memory-mapped from the file instead of being copied.
``strict=True`` checks that every key matches upstream's names.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from function.engines.base import EngineLoadError

# The ``fast`` precision's bfloat16 weights, cast once by ``convert`` rather than at every load.
BF16_NAME = "decoders-bf16"


def converted_path(model_dir: Path, name: str) -> Path:
    return model_dir / f"{name}.safetensors"


def converted_state(model_dir: Path, name: str) -> dict[str, torch.Tensor] | None:
    """The tensors ``convert`` wrote as ``name`` (memory-mapped), None when it did not."""
    converted = converted_path(model_dir, name)
    if not converted.is_file():
        return None
    from safetensors.torch import load_file

    return load_file(converted)


def prefixed_state(modules: dict[str, nn.Module], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The modules' tensors in ``dtype``, named ``{prefix}.{key}`` (the inverse of ``assign``)."""
    return {
        f"{prefix}.{key}": value.to(dtype)
        for prefix, module in modules.items()
        for key, value in module.state_dict().items()
    }


def assign(modules: dict[str, nn.Module], state: dict[str, torch.Tensor], name: str) -> None:
    """Give each module (by prefix) its tensors from ``state`` as they are (memory-mapped, in their
    dtype), strictly: every module's every key, and nothing else in ``state``."""
    used = 0
    for prefix, module in modules.items():
        part = {key.removeprefix(prefix + "."): v for key, v in state.items() if key.startswith(prefix + ".")}
        _load(module, part, name)
        used += len(part)
    if used != len(state):
        raise EngineLoadError(f"{name}: tensors for modules the model does not have (run convert again)")


def load_state(model_dir: Path, name: str) -> dict[str, torch.Tensor]:
    """``name`` (llm, flow, hift, spk2info): the converted file when present, else the official .pt."""
    state = converted_state(model_dir, name)
    if state is not None:
        return state
    path = model_dir / f"{name}.pt"
    if not path.is_file():
        raise EngineLoadError(f"missing {path} (and no {converted_path(model_dir, name).name})")
    # mmap needs torch's zip format; very old checkpoints are read into memory instead.
    return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))


# Layers whose random initialisation is skipped while building a module that a checkpoint then
# fills completely (strict=True): initialising ~436M parameters costs seconds, and building on
# the meta device instead costs as much in torch's one-off imports of its meta kernels.
_INITIALISED = (nn.Linear, nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.modules.conv._ConvNd)


@contextlib.contextmanager
def _uninitialised() -> Iterator[None]:
    saved = [cls.__dict__["reset_parameters"] for cls in _INITIALISED]
    for cls in _INITIALISED:
        cls.reset_parameters = _no_reset
    try:
        yield
    finally:
        for cls, method in zip(_INITIALISED, saved, strict=True):
            cls.reset_parameters = method


def _no_reset(self: nn.Module) -> None:
    """Leaves the parameters as allocated: torch.empty, whose pages are never touched."""


def build(factory: Callable[[], nn.Module], state: dict[str, torch.Tensor], name: str) -> nn.Module:
    """Construct ``factory()`` without initialising it and load ``state`` into it, strictly.

    ``strict=True`` guarantees that every parameter and persistent buffer is replaced by the
    checkpoint's tensor (``assign=True`` keeps them memory-mapped rather than copied).
    """
    with _uninitialised():
        module = factory()
    _load(module, state, name)
    return module.eval()


def _load(module: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    try:
        # load_state_dict may rewrite its argument (HiFT folds weight norm), so it gets a copy.
        module.load_state_dict(dict(state), strict=True, assign=True)
    except RuntimeError as exc:
        raise EngineLoadError(f"{name}: checkpoint does not match the model: {exc}") from exc


def load_speakers(model_dir: Path) -> dict[str, torch.Tensor]:
    """Speaker name -> x-vector (1, 192), from spk2info.safetensors or the official spk2info.pt."""
    state = converted_state(model_dir, "spk2info")
    if state is not None:
        return state
    spk2info = torch.load(model_dir / "spk2info.pt", map_location="cpu", weights_only=True)
    return {name: info["embedding"] for name, info in spk2info.items()}
