"""Convert an official CosyVoice model directory for fast loading (run at image build time).

    python -m function.engines.cosyvoice.convert MODEL_DIR

Writes, next to the official files: ``llm.safetensors``, ``flow.safetensors``,
``hift.safetensors`` and ``spk2info.safetensors`` (the same tensors under the same names, no
pickle, memory-mapped at load; HiFT's weight norm folded into plain weights, as the load does),
``llm-int8-rows.safetensors`` (the LLM's int8 weights for the ``int8`` and ``fast`` precisions),
``decoders-bf16.safetensors`` (the flow's U-Net and HiFT's convolutions in bfloat16, for
``fast``), and ``manifest.json`` (speaker names and a content hash of the converted weights, so
the engine's constructor needs neither torch nor the weights), and, when WeTextProcessing is
installed, ``wetext/``: upstream's Chinese text grammar, compiled. The runtime prefers the
converted files; the ``.pt`` files can be deleted afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import save, save_file

from function.engines.cosyvoice import wetext
from function.engines.cosyvoice.hift import fold_weight_norm
from function.engines.cosyvoice.hparams import load_hparams
from function.engines.cosyvoice.int8 import ALIGNMENT, INT8_NAME, quantize, quantized_state
from function.engines.cosyvoice.metadata import MANIFEST, SPK2INFO
from function.engines.cosyvoice.runtime import bf16_modules, load_decoders, load_llm
from function.engines.cosyvoice.weights import BF16_NAME, converted_path, prefixed_state

FORMAT = 1
MODULES = ("llm", "flow", "hift")


def _save(tensors: dict[str, torch.Tensor], path: Path, aligned: bool = False) -> None:
    # safetensors refuses shared or strided storage; each tensor gets its own contiguous copy.
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    if aligned:
        # The data starts after the header, which safetensors pads to 8 bytes only: padded further
        # (8 bytes of metadata at a time) until the data starts on ALIGNMENT, every tensor whose
        # size is a multiple of it is aligned in the mapped file, as ``_weight_int8pack_mm`` needs.
        for pad in range(0, ALIGNMENT, 8):
            data = save(tensors, metadata={"pad": " " * pad})
            if (8 + int.from_bytes(data[:8], "little")) % ALIGNMENT == 0:
                break
        path.write_bytes(data)
    else:
        save_file(tensors, str(path))
    # safetensors writes 0600: an image's non-root runtime user could not read a root-built file
    # (found by building the image, tests/image/test_cosyvoice_image.py).
    path.chmod(0o644)


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
    # The int8 LLM, quantised once here rather than at every load (``int8.py``); not hashed into
    # the version: it is a function of llm.safetensors, and its precision is in the model version.
    llm = load_llm(model_dir)
    quantize(llm.llm)
    _save(quantized_state(llm.llm), converted_path(model_dir, INT8_NAME), aligned=True)
    del llm
    # The ``fast`` precision's bfloat16 flow U-Net and HiFT convolutions, cast once here rather
    # than at every load; like the int8 file, a function of the files above, so not hashed.
    flow_model, vocoder = load_decoders(model_dir, load_hparams(model_dir / "cosyvoice.yaml"))
    _save(
        prefixed_state(bf16_modules(flow_model, vocoder), torch.bfloat16),
        converted_path(model_dir, BF16_NAME),
    )
    del flow_model, vocoder
    spk2info = torch.load(model_dir / SPK2INFO, map_location="cpu", weights_only=True)
    speakers = list(spk2info)
    _save({name: info["embedding"] for name, info in spk2info.items()}, converted_path(model_dir, "spk2info"))
    written.append(converted_path(model_dir, "spk2info"))
    digest = hashlib.sha256()
    for path in written:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    manifest = {"format": FORMAT, "speakers": speakers, "version": digest.hexdigest()[:16]}
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
