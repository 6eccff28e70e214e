"""What a CosyVoice model directory holds, read without torch (the engine's cheap constructor).

``convert.py`` writes ``manifest.json`` (speaker names, a content hash of the weights); without it
the speaker names come from ``spk2info.pt`` itself, a torch zip archive whose pickle is read with
an unpickler that never rebuilds tensors, so neither torch nor any weight is loaded.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
SPK2INFO = "spk2info.pt"
CONFIG = "cosyvoice.yaml"
# The official checkpoints; the SFT runtime never reads campplus.onnx or speech_tokenizer_v1.onnx.
CHECKPOINTS = ("llm.pt", "flow.pt", "hift.pt")


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


class _KeysOnly(pickle.Unpickler):
    """Unpickles a torch checkpoint's structure with every tensor replaced by None."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module.startswith("torch"):
            return _placeholder
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in {SPK2INFO}")

    def persistent_load(self, pid: Any) -> None:
        return None


def _placeholder(*args: Any, **kwargs: Any) -> None:
    return None


def spk2info_speakers(path: Path) -> list[str]:
    """Speaker names in ``spk2info.pt``, in file order, without torch."""
    with zipfile.ZipFile(path) as archive:
        pickled = next(name for name in archive.namelist() if name.endswith("/data.pkl"))
        with archive.open(pickled) as f:
            data = _KeysOnly(f).load()
    return list(data)


def speakers(model_dir: Path) -> list[str]:
    manifest = read_manifest(model_dir)
    if manifest is not None:
        return list(manifest["speakers"])
    return spk2info_speakers(model_dir / SPK2INFO)


def weights_version(model_dir: Path) -> str:
    """A short id of the weights: the manifest's content hash, else names, sizes and mtimes."""
    manifest = read_manifest(model_dir)
    if manifest is not None:
        return str(manifest["version"])
    digest = hashlib.sha256()
    for name in (CONFIG, *CHECKPOINTS, SPK2INFO):
        stat = (model_dir / name).stat()
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]
