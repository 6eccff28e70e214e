"""Parity of speech tokens -> waveform as the engine runs it, with upstream's CosyVoiceModel.

The per-module tests (test_parity_flow, test_parity_hift) compare each stage in isolation; this
one loads the tiny model directory the way the function does (``load_runtime``) and compares
``token2wav`` with upstream's non-streaming ``CosyVoiceModel.token2wav`` on the same checkpoints,
the same tokens and the same seed, including upstream's speed control.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import torch

from function.engines.cosyvoice.runtime import CosyVoiceRuntime, load_runtime
from tests.cosyvoice.parity import TOLERANCE, max_abs_diff

SPEAKER = "中文女"


@pytest.fixture(scope="module")
def runtime(tiny_model_dir: Path) -> CosyVoiceRuntime:
    return load_runtime(tiny_model_dir)


def upstream_wav(upstream: dict, tokens: list[int], embedding: torch.Tensor, speed: float) -> torch.Tensor:
    from cosyvoice.cli.model import CosyVoiceModel

    model = CosyVoiceModel(upstream["llm"], upstream["flow"], upstream["hift"])
    key = str(uuid.uuid4())
    # The per-request state upstream's tts() sets up before calling token2wav.
    model.hift_cache_dict[key] = None
    model.mel_overlap_dict[key] = torch.zeros(1, 80, 0)
    model.flow_cache_dict[key] = torch.zeros(1, 80, 0, 2)
    with torch.inference_mode():
        wav = model.token2wav(
            token=torch.tensor([tokens], dtype=torch.int32),
            prompt_token=torch.zeros(1, 0, dtype=torch.int32),
            prompt_feat=torch.zeros(1, 0, 80),
            embedding=embedding,
            uuid=key,
            finalize=True,
            speed=speed,
        )
    return wav[0]


@pytest.mark.parametrize(("n_tokens", "speed"), [(12, 1.0), (40, 1.0), (25, 1.5), (25, 0.75)])
def test_token2wav_matches_upstream(
    runtime: CosyVoiceRuntime, upstream: dict, n_tokens: int, speed: float
) -> None:
    embedding = runtime.speakers[SPEAKER]
    vocab = upstream["flow"].input_embedding.num_embeddings
    tokens = torch.randint(0, vocab, (n_tokens,), generator=torch.Generator().manual_seed(n_tokens)).tolist()

    torch.manual_seed(7)
    want = upstream_wav(upstream, tokens, embedding, speed)
    torch.manual_seed(7)
    got = runtime.token2wav(tokens, embedding, speed)

    diff = max_abs_diff(got, want)
    print(f"token2wav {n_tokens} tokens speed {speed}: {got.shape[-1]} samples, max |diff| {diff:.2e}")
    assert diff <= TOLERANCE
    # Not a trivially equal pair: real, non-silent audio whose length follows the speed.
    assert want.abs().max() > 1e-3
    unit = 22050 / 50  # samples per speech token at speed 1 (50 Hz tokens, 22050 Hz audio)
    assert abs(got.shape[-1] - n_tokens * unit / speed) <= 2 * 256 / speed
