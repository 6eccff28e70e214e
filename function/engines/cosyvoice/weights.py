"""Loading checkpoints: official ``.pt`` files or the converted safetensors, memory-mapped.

Modules are built without random initialisation and then take the checkpoint's tensors as they
are (``assign=True``), so the weights stay memory-mapped from the file instead of being copied.
``strict=True`` checks that every key matches upstream's names.

The converted files are read by ``read_safetensors`` (one mapping, each tensor a view of it:
~4x faster than ``safetensors.torch.load_file``'s tensor-by-tensor creation, ~50 ms less at
full size). Files that ``convert`` derives from the converted weights (int8 and bfloat16 copies,
precomputed position keys) carry the manifest's weights version, and a file made from other
weights is refused (``derived_state``).
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from function.engines.base import EngineLoadError
from function.engines.cosyvoice.metadata import read_manifest

# The ``fast`` precision's bfloat16 weights, cast once by ``convert`` rather than at every load.
BF16_NAME = "decoders-bf16"
# The metadata key of a derived file naming the weights version (manifest.json) it was made from.
SOURCE = "source"
# Derived files that converts before the version stamp wrote without it: still taken as they are.
UNSTAMPED_BEFORE = frozenset({BF16_NAME})

_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


def converted_path(model_dir: Path, name: str) -> Path:
    return model_dir / f"{name}.safetensors"


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors, each a view of one private mapping of the file (its pages are
    the page cache's until written, which nothing does), and its metadata."""
    try:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        length = int.from_bytes(mapped[:8], "little")
        header = json.loads(mapped[8 : 8 + length])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (ValueError, IndexError) as exc:
        raise EngineLoadError(f"{path.name}: not a safetensors file (run convert again)") from exc
    metadata = header.pop("__metadata__", None) or {}
    # The storage keeps the mapping alive for as long as any tensor viewing it.
    storage = torch.frombuffer(mapped, dtype=torch.uint8).untyped_storage()
    base = 8 + length
    tensors = {}
    for name, info in header.items():
        try:
            tensors[name] = _view(storage, base, len(mapped), info)
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineLoadError(f"{path.name}: tensor {name} is malformed (run convert again)") from exc
    return tensors, metadata


def write_safetensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str], alignment: int
) -> None:
    """A safetensors file (any reader takes it) whose tensors of a multiple of ``alignment`` bytes
    all start on a multiple of it in the file, so where it is mapped: they come first, after a
    header padded to it (the format leaves the order free; ``safetensors.torch.save`` sorts by
    dtype, which puts a tensor of odd length, such as the output layer's 4097 scales, before the
    int8 weights). ``int8.ALIGNMENT`` says why."""
    names = sorted(tensors, key=lambda name: _nbytes(tensors[name]) % alignment != 0)
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name in names:
        tensor = tensors[name]
        header[name] = {
            "dtype": _NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + _nbytes(tensor)],
        }
        offset += _nbytes(tensor)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-(8 + len(encoded)) % alignment)
    with open(path, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little") + encoded)
        for name in names:
            f.write(tensors[name].detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _view(storage: torch.UntypedStorage, base: int, length: int, info: dict[str, Any]) -> torch.Tensor:
    """The tensor a header entry describes, as a view of the file's storage (ValueError when the
    entry does not fit the file)."""
    dtype, shape = _DTYPES[info["dtype"]], [int(n) for n in info["shape"]]
    start, end = (base + int(offset) for offset in info["data_offsets"])
    size = dtype.itemsize
    if end > length or end - start != math.prod(shape) * size or start % size:
        raise ValueError(f"{start}-{end} does not hold {dtype} {shape}")
    strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
    return torch.empty(0, dtype=dtype).set_(storage, start // size, shape, strides)


def converted_state(model_dir: Path, name: str) -> dict[str, torch.Tensor] | None:
    """The tensors ``convert`` wrote as ``name`` (memory-mapped), None when it did not."""
    converted = converted_path(model_dir, name)
    if not converted.is_file():
        return None
    return read_safetensors(converted)[0]


def derived_state(model_dir: Path, name: str) -> dict[str, torch.Tensor] | None:
    """A file ``convert`` derived from the converted weights (memory-mapped), None when absent;
    refused when its version stamp is not the manifest's: made from other weights, or by a
    convert that was interrupted or run on another copy."""
    path = converted_path(model_dir, name)
    if not path.is_file():
        return None
    tensors, metadata = read_safetensors(path)
    source = metadata.get(SOURCE)
    if source is None and name in UNSTAMPED_BEFORE:
        return tensors
    manifest = read_manifest(model_dir) or {}
    if source is None or source != manifest.get("version"):
        raise EngineLoadError(
            f"{path.name} was made from weights version {source}, not this directory's "
            f"{manifest.get('version')} (run convert again)"
        )
    return tensors


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
