"""The lite LLM against upstream's TransformerLM on the same checkpoint, stage by stage, in fp32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from function.engines.base import EngineLoadError
from function.engines.cosyvoice.convert import convert
from function.engines.cosyvoice.int8 import INT8_NAME, int8_state, load_int8, to_int8
from function.engines.cosyvoice.llm import TransformerLM
from function.engines.cosyvoice.runtime import load_llm
from function.engines.cosyvoice.weights import converted_path, load_speakers, read_safetensors

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def lite(tiny_model_dir: Path) -> TransformerLM:
    return load_llm(tiny_model_dir)


def text_ids(length: int, seed: int) -> torch.Tensor:
    return torch.randint(
        0, 51866, (1, length), generator=torch.Generator().manual_seed(seed), dtype=torch.int32
    )


def speaker(model_dir: Path, name: str = "英文女") -> torch.Tensor:
    return load_speakers(model_dir)[name]


def lite_logps(
    lm: TransformerLM, text: torch.Tensor, embedding: torch.Tensor, forced: list[int]
) -> torch.Tensor:
    """(len(forced) + 1, vocab): the log-probs before each forced token and after the last."""
    with torch.inference_mode():
        state, logp = lm.start(text, embedding, max_tokens=len(forced))
        return torch.stack([logp, *(lm.step(state, token) for token in forced)])


def upstream_logps(up, text: torch.Tensor, embedding: torch.Tensor, forced: list[int]) -> list[torch.Tensor]:
    """Upstream's own decode loop (TransformerLM.inference), fed ``forced`` instead of sampling."""
    text_len = torch.tensor([text.shape[1]], dtype=torch.int32)
    encoded, _ = up.encode(up.text_embedding(text), text_len)
    spk = up.spk_embed_affine_layer(F.normalize(embedding, dim=1)).unsqueeze(1)
    sos = up.llm_embedding.weight[up.sos_eos].reshape(1, 1, -1)
    task = up.llm_embedding.weight[up.task_id].reshape(1, 1, -1)
    lm_input = torch.cat([sos, spk, encoded, task], dim=1)
    att_cache, cnn_cache = torch.zeros((0, 0, 0, 0)), torch.zeros((0, 0, 0, 0))
    offset, out = 0, []
    for token in [*forced, None]:
        mask = torch.tril(torch.ones((1, lm_input.shape[1], lm_input.shape[1]))).to(torch.bool)
        y, att_cache, cnn_cache = up.llm.forward_chunk(
            lm_input,
            offset=offset,
            required_cache_size=-1,
            att_cache=att_cache,
            cnn_cache=cnn_cache,
            att_mask=mask,
        )
        out.append(up.llm_decoder(y[:, -1]).log_softmax(dim=-1)[0])
        if token is None:
            break
        offset += lm_input.size(1)
        lm_input = up.speech_embedding.weight[token].reshape(1, 1, -1)
    return out


def upstream_tokens(up, text: torch.Tensor, embedding: torch.Tensor, seed: int, **ratios: float) -> list[int]:
    torch.manual_seed(seed)
    empty = torch.zeros(1, 0, dtype=torch.int32)
    zero = torch.tensor([0], dtype=torch.int32)
    text_len = torch.tensor([text.shape[1]], dtype=torch.int32)
    return list(up.inference(text, text_len, empty, zero, empty, zero, embedding, **ratios))


def test_official_checkpoint_loads_strictly_with_upstreams_key_names(
    lite: TransformerLM, upstream: dict
) -> None:
    ours = lite.state_dict()
    theirs = upstream["llm"].state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_converted_checkpoint_loads_the_same_tensors(tiny_model_dir: Path, tmp_path: Path) -> None:
    for name in ("cosyvoice.yaml", "llm.pt", "flow.pt", "hift.pt", "spk2info.pt", "multilingual.tiktoken"):
        (tmp_path / name).symlink_to(tiny_model_dir / name)
    manifest = convert(tmp_path)
    assert manifest["speakers"] == list(load_speakers(tiny_model_dir))
    for name in ("llm.pt", "flow.pt", "hift.pt", "spk2info.pt"):
        (tmp_path / name).unlink()
    converted = load_llm(tmp_path).state_dict()
    original = load_llm(tiny_model_dir).state_dict()
    assert all(torch.equal(converted[k], original[k]) for k in original)
    assert all(torch.equal(load_speakers(tmp_path)[k], v) for k, v in load_speakers(tiny_model_dir).items())
    # convert's int8 LM (loaded from its bytes) is the one quantisation at load gives. (Both from
    # the same files: the same values at other addresses can round differently in the last bit.)
    lm_fp32, at_load = load_llm(tmp_path), load_llm(tmp_path)
    to_int8(at_load)
    from_file = load_llm(tmp_path)
    load_int8(from_file, read_safetensors(converted_path(tmp_path, INT8_NAME))[0])
    text, embedding = text_ids(9, 3), speaker(tiny_model_dir)
    forced = torch.randint(0, 4096, (12,), generator=torch.Generator().manual_seed(4)).tolist()
    got = lite_logps(from_file, text, embedding, forced)
    assert torch.equal(got, lite_logps(at_load, text, embedding, forced))
    # ...and is not fp32 (it really is quantised).
    assert not torch.equal(got, lite_logps(lm_fp32, text, embedding, forced))


def test_an_int8_file_of_another_model_is_refused(tiny_model_dir: Path) -> None:
    lm = load_llm(tiny_model_dir)
    to_int8(lm)
    state = int8_state(lm)
    state.pop(next(iter(state)))
    with pytest.raises(EngineLoadError, match="llm-int8"):
        load_int8(load_llm(tiny_model_dir), state)


@pytest.mark.parametrize("length", [1, 7, 31])
def test_text_encoder_matches_upstream(lite: TransformerLM, upstream: dict, length: int) -> None:
    up = upstream["llm"]
    text = text_ids(length, length)
    with torch.inference_mode():
        expected, _ = up.encode(up.text_embedding(text), torch.tensor([length], dtype=torch.int32))
        got = lite.encode_text(text)
    assert got.shape == expected[0].shape
    diff = (got - expected[0]).abs().max().item()
    print(f"text encoder {length} tokens: max abs diff {diff:.3e}")
    assert diff <= TOLERANCE


def test_log_probs_match_upstream_at_every_step(
    lite: TransformerLM, upstream: dict, tiny_model_dir: Path
) -> None:
    text = text_ids(13, 1)
    embedding = speaker(tiny_model_dir)
    forced = torch.randint(0, 4096, (40,), generator=torch.Generator().manual_seed(2)).tolist()
    with torch.inference_mode():
        expected = upstream_logps(upstream["llm"], text, embedding, forced)
        got = list(lite_logps(lite, text, embedding, forced))
    assert len(got) == len(expected) == len(forced) + 1
    worst = max((g - e).abs().max().item() for g, e in zip(got, expected, strict=True))
    print(f"LLM log-probs, {len(got)} steps: max abs diff {worst:.3e}")
    assert worst <= TOLERANCE


@pytest.mark.parametrize(
    ("length", "seed", "voice"), [(5, 0, "英文女"), (12, 1, "中文男"), (20, 7, "韩语女")]
)
def test_same_seed_gives_the_same_speech_tokens(
    lite: TransformerLM, upstream: dict, tiny_model_dir: Path, length: int, seed: int, voice: str
) -> None:
    text = text_ids(length, seed)
    embedding = speaker(tiny_model_dir, voice)
    # A lower ceiling than upstream's 20 tokens per text token keeps upstream's slow loop short.
    expected = upstream_tokens(upstream["llm"], text, embedding, seed, max_token_text_ratio=8)
    torch.manual_seed(seed)
    got = lite.generate(text, embedding, max_token_text_ratio=8)
    assert len(expected) >= 2 * length
    assert got == expected


def test_forced_length_is_exact_and_matches_upstream_with_equal_ratios(
    lite: TransformerLM, upstream: dict, tiny_model_dir: Path
) -> None:
    text = text_ids(6, 3)
    embedding = speaker(tiny_model_dir)
    # Upstream decodes exactly N tokens when min and max token/text ratios both give N.
    ratio = 50.5 / 6
    expected = upstream_tokens(
        upstream["llm"], text, embedding, 11, min_token_text_ratio=ratio, max_token_text_ratio=ratio
    )
    torch.manual_seed(11)
    got = lite.generate(text, embedding, force_tokens=50)
    assert len(got) == len(expected) == 50
    assert got == expected
