"""The Dockerfile's CosyVoice model steps, replayed on the tiny random model in the official layout:
fetch only the allowed files, add the tokenizer vocabulary (checked by the Dockerfile's hash), run
the Dockerfile's own convert-and-prune step, then the image's build-time self test must pass on
what is left. The real weights cannot be downloaded here; the layout and every step are the same.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from function.engines.cosyvoice import metadata
from function.engines.cosyvoice.tokenizer import VOCAB_FILE
from loadtest.upstream_cosyvoice.random_model import build_tiny_model
from tests.deploy import iac


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the Hugging Face repository holds (official layout, random tiny weights) plus the vocab."""
    return build_tiny_model(tmp_path_factory.mktemp("cosyvoice-upstream"))


def build_stage() -> list[dict]:
    return iac.stage_named(iac.dockerfile("cosyvoice"), "model-cosyvoice")


def run_step(containing: str) -> str:
    (step,) = [i["value"] for i in build_stage() if i["instruction"] == "RUN" and containing in i["value"]]
    return step


def fetched_files() -> list[str]:
    step = run_step("snapshot_download")
    return json.loads(re.search(r"allow_patterns=(\[[^\]]*\])", step)[1])


def test_the_fetch_is_exactly_the_files_the_engine_reads() -> None:
    assert set(fetched_files()) == {metadata.CONFIG, metadata.SPK2INFO, *metadata.CHECKPOINTS}


def test_the_vocabulary_is_the_pinned_whisper_file_the_engine_expects(tiny_model_dir: Path) -> None:
    step = run_step("multilingual.tiktoken")
    assert f"/whisper/assets/{VOCAB_FILE}" in step
    args = iac.stage_args(build_stage())
    # The tests' vocabulary comes from the same openai-whisper release the image fetches.
    assert importlib.metadata.version("openai-whisper") == args["WHISPER_VERSION"]
    digest = hashlib.sha256((tiny_model_dir / VOCAB_FILE).read_bytes()).hexdigest()
    assert digest == args["WHISPER_VOCAB_SHA256"]


@pytest.fixture(scope="module")
def baked_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("baked") / "cosyvoice-300m-sft"
    model_dir.mkdir()
    for name in [*fetched_files(), VOCAB_FILE]:
        shutil.copy(tiny_model_dir / name, model_dir / name)
    env = {
        **os.environ,
        "ENGINES": "cosyvoice",  # the step's guard: it converts only when ENGINES names cosyvoice
        "MODEL_DIR": str(model_dir),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    step = run_step("function.engines.cosyvoice.convert")
    subprocess.run(["bash", "-o", "pipefail", "-c", step], cwd=iac.ROOT, env=env, check=True, timeout=300)
    return model_dir


def test_convert_and_prune_leaves_no_pickled_checkpoints(baked_model_dir: Path) -> None:
    names = {p.name for p in baked_model_dir.iterdir()}
    assert not {n for n in names if n.endswith((".pt", ".onnx"))}
    assert {metadata.CONFIG, VOCAB_FILE, metadata.MANIFEST} <= names
    assert {"llm.safetensors", "flow.safetensors", "hift.safetensors", "spk2info.safetensors"} <= names


def test_the_images_self_test_passes_on_the_baked_directory(baked_model_dir: Path) -> None:
    env = {
        **os.environ,
        **iac.dockerfile("cosyvoice").envs,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(iac.ROOT),
        "TTS_MODEL_DIR": str(baked_model_dir),
    }
    assert env["TTS_ENGINES"] == "cosyvoice"
    (selftest,) = [
        i["value"] for i in iac.stage_named(iac.dockerfile(), "runtime") if "selftest" in i["value"]
    ]
    result = subprocess.run(
        selftest.split(), cwd=iac.ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "selftest: engine=cosyvoice" in result.stdout
