"""Convert an official CosyVoice model directory for fast loading (run at image build time).

    python -m function.engines.cosyvoice.convert MODEL_DIR

Writes, next to the official files: ``llm.safetensors``, ``flow.safetensors``,
``hift.safetensors`` and ``spk2info.safetensors`` (the same tensors under the same names, no
pickle, memory-mapped at load; HiFT's weight norm folded into plain weights, as the load does),
``llm-int8-fused.safetensors`` (the LLM's int8 weights for the ``int8`` and ``fast`` precisions,
q, k and v fused and the output layer included), ``llm-positions.safetensors`` (the LM's
projected position keys, fp32 and int8), ``decoders-bf16.safetensors`` (the flow's U-Net and
HiFT's convolutions in bfloat16, for ``fast``): each of these three stamped with the weights
version they were computed from, and ``manifest.json`` (speaker names and a content hash of the
converted weights, so the engine's constructor needs neither torch nor the weights), and, when
WeTextProcessing is installed, ``wetext/``: upstream's Chinese text grammar, compiled. The
runtime prefers the converted files; the ``.pt`` files can be deleted afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from function.engines.cosyvoice import wetext
from function.engines.cosyvoice.hift import fold_weight_norm
from function.engines.cosyvoice.hparams import load_hparams
from function.engines.cosyvoice.int8 import ALIGNMENT, INT8_NAME, int8_state, load_int8, to_int8
from function.engines.cosyvoice.metadata import MANIFEST, SPK2INFO
from function.engines.cosyvoice.runtime import POSITIONS_NAME, bf16_modules, load_decoders, load_llm
from function.engines.cosyvoice.weights import (
    BF16_NAME,
    SOURCE,
    converted_path,
    prefixed_state,
    read_safetensors,
    write_safetensors,
)

FORMAT = 1
MODULES = ("llm", "flow", "hift")


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    # safetensors refuses shared or strided storage; each tensor gets its own contiguous copy.
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(path))
    _readable(path)


def _readable(path: Path) -> None:
    # safetensors writes 0600: an image's non-root runtime user could not read a root-built file
    # (found by building the image, tests/image/test_cosyvoice_image.py).
    path.chmod(0o644)


def _save_derived(tensors: dict[str, torch.Tensor], path: Path, version: str) -> None:
    """A file computed from the hashed ones: stamped with their version (``weights.derived_state``
    refuses it with other weights) and aligned for the int8 kernel (``int8.ALIGNMENT``)."""
    write_safetensors(tensors, path, {SOURCE: version}, ALIGNMENT)
    _readable(path)


def _version(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _derived(model_dir: Path, version: str) -> None:
    """What the load would otherwise compute from the converted weights, computed once here (the
    load maps it; without these files it computes the same values: ~0.2-0.3 s quiet at full size,
    many times that when a neighbour shares the CPU). Not hashed into the model version: a
    function of the hashed files, whose version each carries."""
    hparams = load_hparams(model_dir / "cosyvoice.yaml")
    # The int8 LM (``int8.py``): per-row int8 weights, q, k and v fused, the output layer.
    llm = load_llm(model_dir, hparams)
    to_int8(llm)
    _save_derived(int8_state(llm), converted_path(model_dir, INT8_NAME), version)
    # The projected position keys of fp32 and of the int8 LM, each from the weights as the load
    # maps them (the same values at other addresses can round differently in the last bit).
    keys = {"fp32": load_llm(model_dir, hparams).position_keys()}
    llm = load_llm(model_dir, hparams)
    load_int8(llm, read_safetensors(converted_path(model_dir, INT8_NAME))[0])
    keys["int8"] = llm.position_keys()
    _save_derived(keys, converted_path(model_dir, POSITIONS_NAME), version)
    del llm
    # The ``fast`` precision's bfloat16 flow U-Net and HiFT convolutions, cast once here.
    flow_model, vocoder = load_decoders(model_dir, hparams)
    bf16 = prefixed_state(bf16_modules(flow_model, vocoder), torch.bfloat16)
    _save_derived(bf16, converted_path(model_dir, BF16_NAME), version)


def convert(model_dir: Path) -> dict[str, object]:
    written = []
    for name in MODULES:
        state = torch.load(model_dir / f"{name}.pt", map_location="cpu", weights_only=True)
        if name == "hift":
            # Weight norm folded here, with the function the load would fold it with (the same
            # bytes): the load then maps the weights instead of computing them (~0.1 s).
            fold_weight_norm(state)
        _save(state, converted_path(model_dir, name))
        written.append(converted_path(model_dir, name))
    spk2info = torch.load(model_dir / SPK2INFO, map_location="cpu", weights_only=True)
    speakers = list(spk2info)
    _save({name: info["embedding"] for name, info in spk2info.items()}, converted_path(model_dir, "spk2info"))
    written.append(converted_path(model_dir, "spk2info"))
    version = _version(written)
    _derived(model_dir, version)
    manifest = {"format": FORMAT, "speakers": speakers, "version": version}
    if wetext.available():
        # Upstream's text normaliser with upstream's options, compiled once here (~6 s) rather
        # than at every load as upstream does.
        wetext.build_grammars(model_dir / wetext.GRAMMAR_DIR)
        manifest["text_normalizer"] = "wetext"
    (model_dir / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_dir", type=Path)
    args = parser.parse_args()
    print(json.dumps(convert(args.model_dir), ensure_ascii=False))


if __name__ == "__main__":
    main()
