"""Parity of the streamed token2wav (``streamed.py``) with upstream's ``CosyVoiceModel.tts(stream=True)``.

Upstream's own ``tts`` runs, thread and all, with its LLM replaced by one that yields fixed
tokens (upstream's LLM job runs in a thread and would race the decoders for torch's global
generator; the fixed tokens draw nothing, so every random draw is the main thread's, in order, and
the chunking depends only on the token count). The lite runtime decodes the same tokens from a
generator seeded like upstream's global one; every chunk must match within the parity tolerance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from function.engines.cosyvoice.runtime import CosyVoiceRuntime, load_runtime
from function.engines.cosyvoice.streamed import StreamedToken2Wav
from tests.cosyvoice.parity import TOLERANCE, max_abs_diff

SPEAKER = "中文女"
SEED = 11


class FixedTokens(torch.nn.Module):
    """Stands in for upstream's LLM in ``llm_job``: yields the given tokens, draws nothing."""

    def __init__(self, tokens: list[int]) -> None:
        super().__init__()
        self.tokens = tokens

    def inference(self, **_: object) -> Iterator[int]:
        yield from self.tokens


@pytest.fixture(scope="module")
def runtime(tiny_model_dir: Path) -> CosyVoiceRuntime:
    return load_runtime(tiny_model_dir)


def upstream_chunks(upstream: dict, tokens: list[int], embedding: torch.Tensor) -> list[torch.Tensor]:
    from cosyvoice.cli.model import CosyVoiceModel

    model = CosyVoiceModel(FixedTokens(tokens), upstream["flow"], upstream["hift"])
    torch.manual_seed(SEED)
    with torch.inference_mode():
        out = model.tts(
            text=torch.zeros(1, 1, dtype=torch.int32),
            flow_embedding=embedding,
            llm_embedding=embedding,
            stream=True,
        )
        return [chunk["tts_speech"][0] for chunk in out]


def lite_chunks(runtime: CosyVoiceRuntime, tokens: list[int], embedding: torch.Tensor) -> list[torch.Tensor]:
    decoder = StreamedToken2Wav(runtime.flow, runtime.hift, embedding, torch.Generator().manual_seed(SEED))
    return list(decoder.wave(iter(tokens)))


# 60: one finalize chunk (no hop); 250: two hops of 100 (+20 overlap) tokens, then the 50 left.
@pytest.mark.parametrize(("n_tokens", "n_chunks"), [(60, 1), (250, 3)])
def test_streamed_chunks_match_upstream_stream_mode(
    runtime: CosyVoiceRuntime, upstream: dict, n_tokens: int, n_chunks: int
) -> None:
    embedding = runtime.speakers[SPEAKER]
    vocab = upstream["flow"].input_embedding.num_embeddings
    tokens = torch.randint(0, vocab, (n_tokens,), generator=torch.Generator().manual_seed(n_tokens)).tolist()

    want = upstream_chunks(upstream, tokens, embedding)
    got = lite_chunks(runtime, tokens, embedding)

    assert len(want) == len(got) == n_chunks
    for index, (mine, theirs) in enumerate(zip(got, want, strict=True)):
        diff = max_abs_diff(mine, theirs)
        print(f"{n_tokens} tokens, chunk {index}: {mine.shape[-1]} samples, max |diff| {diff:.2e}")
        assert diff <= TOLERANCE
        assert theirs.abs().max() > 1e-3  # real audio, not a trivially equal pair


def test_streamed_piece_samples_the_same_tokens_deterministically(runtime: CosyVoiceRuntime) -> None:
    piece = "A hop at a time, twice."
    speaker = runtime.speakers[SPEAKER]
    torch.manual_seed(SEED)
    whole = list(runtime.speech_tokens(piece, speaker))
    # synthesize seeds torch's global generator; the streamed path seeds its own the same way.
    assert list(runtime.speech_tokens(piece, speaker, torch.Generator().manual_seed(SEED))) == whole
    assert len(whole) > 120  # more than one hop (the tiny LLM speaks to its length limit: 160)

    first = list(runtime.synthesize_streamed(piece, SPEAKER, SEED))
    again = list(runtime.synthesize_streamed(piece, SPEAKER, SEED))
    assert len(first) == len(again) == 2
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    # As long as the whole piece's audio, within the hops' rounding of mel frames (one each).
    assert abs(sum(len(c) for c in first) - int(len(whole) / 50 * 22050 / 256) * 256) <= 256


def test_streamed_chunks_match_upstream_for_a_25_hz_token_model(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """At 25 tokens a second the mel overlap (20 tokens) is 69 frames while upstream's flow still
    carries 34: the chunks after the first differed by ~1.5e-2 when the two were taken as equal."""
    from loadtest.upstream_cosyvoice.random_model import build_tiny_model, upstream_modules

    model_dir = build_tiny_model(tmp_path_factory.mktemp("cosyvoice-25hz"), frame_rate=25)
    runtime, upstream = load_runtime(model_dir), upstream_modules(model_dir)
    embedding = runtime.speakers[SPEAKER]
    tokens = torch.randint(0, 4096, (160,), generator=torch.Generator().manual_seed(25)).tolist()
    want = upstream_chunks(upstream, tokens, embedding)
    got = lite_chunks(runtime, tokens, embedding)
    assert len(want) == len(got) >= 3
    for mine, theirs in zip(got, want, strict=True):
        assert max_abs_diff(mine, theirs) <= TOLERANCE
