"""What ``convert`` writes for the faster precisions loads as what casting or quantising at load
gives, and the int8 LLM stays near fp32 (tiny model; the full-size figures are the bench's)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from function.engines.base import EngineLoadError
from function.engines.cosyvoice import flow, wetext
from function.engines.cosyvoice.convert import convert
from function.engines.cosyvoice.hparams import load_hparams
from function.engines.cosyvoice.int8 import ALIGNMENT, INT8_NAME, Int8Linear, load_quantized, quantize
from function.engines.cosyvoice.runtime import _with_precision, decoders_in, load_decoders, load_llm
from function.engines.cosyvoice.weights import BF16_NAME, converted_path
from tests.cosyvoice.test_llm_parity import lite_logps, speaker, text_ids


@pytest.fixture(scope="module")
def converted(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("converted")
    for path in tiny_model_dir.iterdir():
        (directory / path.name).symlink_to(path)
    torch.set_num_threads(1)  # as the other tests load the tiny model (2 threads on 2 busy vCPUs crawl)
    with pytest.MonkeyPatch.context() as patch:
        # The text grammar (seconds to compile) is another test's subject, not these weights'.
        patch.setattr(wetext, "available", lambda: False)
        convert(directory)
    return directory


def _decoders(model_dir: Path) -> tuple[nn.Module, nn.Module]:
    return load_decoders(model_dir, load_hparams(model_dir / "cosyvoice.yaml"))


def test_converted_hift_is_folded_into_the_same_weights(tiny_model_dir: Path, converted: Path) -> None:
    assert not any(key.endswith(".weight_g") for key in load_file(converted_path(converted, "hift")))
    want, got = _decoders(tiny_model_dir)[1].state_dict(), _decoders(converted)[1].state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_converted_bf16_weights_are_the_cast_ones(converted: Path) -> None:
    cast, mapped = _decoders(converted), _decoders(converted)
    decoders_in(*cast, torch.bfloat16)
    decoders_in(*mapped, torch.bfloat16, load_file(converted_path(converted, BF16_NAME)))
    for want, got in zip(cast, mapped, strict=True):
        want_state, got_state = want.state_dict(), got.state_dict()
        assert want_state.keys() == got_state.keys()
        assert all(torch.equal(want_state[k], got_state[k]) for k in want_state)
        assert any(v.dtype == torch.bfloat16 for v in got_state.values())
    embedding = speaker(converted)
    tokens = torch.randint(0, 4096, (1, 40), generator=torch.Generator().manual_seed(3), dtype=torch.int32)
    mels = []
    for flow_model, vocoder in (cast, mapped):
        torch.manual_seed(0)
        mel = flow_model.inference(tokens, embedding)
        mels.append((mel, vocoder.inference(mel)))
    assert torch.equal(mels[0][0], mels[1][0]) and torch.equal(mels[0][1], mels[1][1])


def test_a_bf16_file_of_another_model_is_refused(converted: Path) -> None:
    state = load_file(converted_path(converted, BF16_NAME))
    state.pop(next(iter(state)))
    with pytest.raises(EngineLoadError, match=BF16_NAME):
        decoders_in(*_decoders(converted), torch.bfloat16, state)
    wrong_dtype = {k: v.float() for k, v in load_file(converted_path(converted, BF16_NAME)).items()}
    with pytest.raises(EngineLoadError, match=BF16_NAME):
        decoders_in(*_decoders(converted), torch.bfloat16, wrong_dtype)


def test_fused_attention_is_the_three_projections(converted: Path) -> None:
    # One matrix product for q, k and v gives what the three separate ones give, bit for bit.
    attention = next(m for m in _decoders(converted)[0].modules() if isinstance(m, flow.Attention))
    attention.to(torch.bfloat16)
    x = torch.randn(2, 37, attention.to_q.in_features, generator=torch.Generator().manual_seed(5))
    x = x.to(torch.bfloat16)
    b, heads = x.size(0), attention.heads
    q, k, v = (
        y.view(b, -1, heads, y.size(-1) // heads).transpose(1, 2)
        for y in (attention.to_q(x), attention.to_k(x), attention.to_v(x))
    )
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.size(-1) ** -0.5
    want = attention.to_out[0](torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(b, 37, -1))
    attention.fuse_projections()
    assert attention.to_q.weight.data_ptr() == attention.qkv.data_ptr()  # views, not copies
    assert torch.equal(attention(x, None), want)


def test_int8_file_is_quantisation_at_load_and_near_fp32(converted: Path) -> None:
    at_load, from_file, fp32 = load_llm(converted), load_llm(converted), load_llm(converted)
    quantize(at_load.llm)
    load_quantized(from_file.llm, load_file(converted_path(converted, INT8_NAME)))
    for want, got in zip(at_load.llm.modules(), from_file.llm.modules(), strict=True):
        if isinstance(want, Int8Linear):
            assert torch.equal(want.weight, got.weight) and torch.equal(want.scales, got.scales)
    text, embedding = text_ids(9, 3), speaker(converted)
    forced = torch.randint(0, 4096, (12,), generator=torch.Generator().manual_seed(4)).tolist()
    reference = lite_logps(fp32, text, embedding, forced)
    int8_llm = _with_precision(load_llm(converted), "int8", converted)
    assert isinstance(int8_llm.llm_decoder, Int8Linear)  # the output layer too
    int8 = lite_logps(int8_llm, text, embedding, forced)
    # Quantised (it differs) and close: the full-size model's figures are in docs/cosyvoice.md.
    difference = (int8 - reference).abs().max().item()
    assert 0 < difference < 0.1
    assert (int8.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.9


def test_int8_linear_error_is_a_fraction_of_a_percent() -> None:
    generator = torch.Generator().manual_seed(6)
    layer = nn.Linear(512, 256)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(256, 512, generator=generator) * 0.05)
    x = torch.randn(3, 512, generator=generator)
    quantized = Int8Linear.quantized(layer)
    with torch.no_grad():
        want, got = layer(x), quantized(x)
    assert quantized.weight.dtype == torch.int8 and quantized.scales.shape == (256,)
    relative = (got - want).norm() / want.norm()
    assert 0 < relative < 0.01


def test_int8_weights_are_mapped_aligned_and_a_misaligned_file_is_refused(
    converted: Path, tmp_path: Path
) -> None:
    # torch's int8 kernel segfaults on a weight 8 bytes off a multiple of 64: convert pads the
    # file's header so that every weight is aligned where the file is mapped...
    state = load_file(converted_path(converted, INT8_NAME))
    assert all(tensor.data_ptr() % ALIGNMENT == 0 for tensor in state.values())
    # ...and a file laid out without that care is refused at load, not run into a crash.
    misaligned = tmp_path / "misaligned.safetensors"
    for pad in range(0, ALIGNMENT, 8):
        save_file(state, str(misaligned), metadata={"pad": " " * pad})
        header = int.from_bytes(misaligned.read_bytes()[:8], "little")
        if (8 + header) % ALIGNMENT:
            break
    with pytest.raises(EngineLoadError, match="aligned"):
        load_quantized(load_llm(converted).llm, load_file(misaligned))
