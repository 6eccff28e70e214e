"""Fixtures for the CosyVoice engine: a tiny random model in the official layout, and the oracle."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.upstream_cosyvoice.random_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Official layout (cosyvoice.yaml, llm.pt, flow.pt, hift.pt, spk2info.pt, vocab), random weights."""
    return build_tiny_model(tmp_path_factory.mktemp("cosyvoice-tiny"))


@pytest.fixture(scope="session")
def upstream(tiny_model_dir: Path) -> dict:
    """Upstream's llm/flow/hift modules with the tiny checkpoints loaded (the parity oracle)."""
    from loadtest.upstream_cosyvoice.random_model import upstream_modules

    return upstream_modules(tiny_model_dir)
