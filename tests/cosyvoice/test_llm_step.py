"""The decode step's load-time preparations change no result: the int8 LM's fused q/k/v product
and the position keys projected at load give the same log-probs, bit for bit, and so the same
speech tokens for a seed as the LM without them (tiny model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from function.engines.cosyvoice.int8 import Int8Linear, quantize
from function.engines.cosyvoice.llm import TransformerLM
from function.engines.cosyvoice.runtime import _with_precision, load_llm
from tests.cosyvoice.test_llm_parity import lite_logps, speaker, text_ids, upstream_tokens


def unfused_int8(model_dir: Path) -> TransformerLM:
    """The int8 LM as it was before fusing: every linear layer its own product, nothing prepared."""
    lm = load_llm(model_dir)
    quantize(lm.llm)
    lm.llm_decoder = Int8Linear.quantized(lm.llm_decoder)
    return lm


@pytest.fixture(scope="module")
def int8_pair(tiny_model_dir: Path) -> tuple[TransformerLM, TransformerLM]:
    return unfused_int8(tiny_model_dir), _with_precision(load_llm(tiny_model_dir), "int8", tiny_model_dir)


def test_int8_lm_is_fused_and_its_projections_are_views(
    int8_pair: tuple[TransformerLM, TransformerLM],
) -> None:
    reference, fused = int8_pair
    assert not reference.qkv and len(fused.qkv) == len(fused.llm.encoders)
    for layer, qkv in zip(fused.llm.encoders, fused.qkv, strict=True):
        start, end = qkv.weight.data_ptr(), qkv.weight.data_ptr() + qkv.weight.numel()
        for part in (layer.self_attn.linear_q, layer.self_attn.linear_k, layer.self_attn.linear_v):
            assert start <= part.weight.data_ptr() < end  # one copy of the weights, not two


def test_fused_int8_log_probs_are_the_unfused_ones(
    int8_pair: tuple[TransformerLM, TransformerLM], tiny_model_dir: Path
) -> None:
    reference, fused = int8_pair
    text, embedding = text_ids(11, 5), speaker(tiny_model_dir)
    forced = torch.randint(0, 4096, (30,), generator=torch.Generator().manual_seed(8)).tolist()
    want = lite_logps(reference, text, embedding, forced)
    assert torch.equal(lite_logps(fused, text, embedding, forced), want)


@pytest.mark.parametrize(("length", "seed", "voice"), [(5, 0, "英文女"), (12, 1, "中文男")])
def test_fused_int8_samples_the_unfused_tokens(
    int8_pair: tuple[TransformerLM, TransformerLM], tiny_model_dir: Path, length: int, seed: int, voice: str
) -> None:
    reference, fused = int8_pair
    text, embedding = text_ids(length, seed), speaker(tiny_model_dir, voice)
    tokens = []
    for lm in (reference, fused):
        torch.manual_seed(seed)
        tokens.append(lm.generate(text, embedding, max_token_text_ratio=8))
    assert len(tokens[0]) >= 2 * length
    assert tokens[1] == tokens[0]


def test_prepared_fp32_lm_samples_upstreams_tokens(upstream: dict, tiny_model_dir: Path) -> None:
    lm = _with_precision(load_llm(tiny_model_dir), "fp32", tiny_model_dir)
    text, embedding = text_ids(12, 1), speaker(tiny_model_dir, "中文男")
    expected = upstream_tokens(upstream["llm"], text, embedding, 1, max_token_text_ratio=8)
    torch.manual_seed(1)
    assert lm.generate(text, embedding, max_token_text_ratio=8) == expected


def test_concatenated_layers_give_each_layers_output() -> None:
    generator = torch.Generator().manual_seed(9)
    layers = [nn.Linear(64, 48), nn.Linear(64, 32, bias=False), nn.Linear(64, 16)]
    with torch.no_grad():
        for layer in layers:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.1)
    int8 = [Int8Linear.quantized(layer) for layer in layers]
    x = torch.randn(3, 64, generator=generator)
    with torch.no_grad():
        want = [layer(x) for layer in int8]
        got = Int8Linear.concatenated(int8)(x).split([48, 32, 16], dim=-1)
        assert all(torch.equal(w, g) for w, g in zip(want, got, strict=True))
        # The separate layers, now views of the fused weights, still give their outputs.
        assert all(torch.equal(layer(x), w) for layer, w in zip(int8, want, strict=True))
