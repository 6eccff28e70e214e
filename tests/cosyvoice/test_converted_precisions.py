"""What ``convert`` writes for the faster precisions loads as what casting or quantising at load
gives, and the int8 LLM stays near fp32 (tiny model; the full-size figures are the bench's)."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from function.engines.base import EngineLoadError
from function.engines.cosyvoice import flow, runtime, wetext
from function.engines.cosyvoice.convert import convert
from function.engines.cosyvoice.hparams import load_hparams
from function.engines.cosyvoice.int8 import ALIGNMENT, INT8_NAME, Int8Linear, load_int8, to_int8
from function.engines.cosyvoice.llm import TransformerLM
from function.engines.cosyvoice.metadata import MANIFEST
from function.engines.cosyvoice.runtime import (
    POSITIONS_NAME,
    _with_precision,
    decoders_in,
    load_decoders,
    load_llm,
    load_runtime,
)
from function.engines.cosyvoice.weights import (
    BF16_NAME,
    SOURCE,
    converted_path,
    derived_state,
    read_safetensors,
    write_safetensors,
)
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
    state = read_safetensors(converted_path(converted, BF16_NAME))[0]
    decoders_in(*mapped, torch.bfloat16, state)
    # q, k and v lie back to back in convert's file: fused as a view of the mapping, not a copy.
    in_file = next(iter(state.values())).untyped_storage().data_ptr()
    attentions = [m for m in mapped[0].modules() if isinstance(m, flow.Attention)]
    assert attentions and all(a.qkv.untyped_storage().data_ptr() == in_file for a in attentions)
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
    to_int8(at_load)
    load_int8(from_file, read_safetensors(converted_path(converted, INT8_NAME))[0])
    fused = [(want, got) for want, got in zip(at_load.qkv, from_file.qkv, strict=True)]
    for want, got in [*zip(at_load.modules(), from_file.modules(), strict=True), *fused]:
        assert type(want) is type(got)
        if isinstance(want, Int8Linear):
            assert torch.equal(want.weight, got.weight) and torch.equal(want.scales, got.scales)
            assert (want.bias is None) == (got.bias is None)
            assert want.bias is None or torch.equal(want.bias, got.bias)
    # The separate q, k and v are views of the fused weights mapped from the file.
    q, qkv = from_file.llm.encoders[0].self_attn.linear_q, from_file.qkv[0]
    assert q.weight.data_ptr() == qkv.weight.data_ptr()
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
    # torch's int8 kernel segfaults on a weight 8 bytes off a multiple of 64: convert lays the
    # file out so that every weight is aligned where the file is mapped (the output layer's
    # scales, 2 bytes each for an odd number of rows, go after them)...
    state = read_safetensors(converted_path(converted, INT8_NAME))[0]
    assert any(tensor.numel() * 2 % ALIGNMENT for name, tensor in state.items() if name.endswith(".scales"))
    assert all(tensor.data_ptr() % ALIGNMENT == 0 for tensor in state.values() if tensor.dtype == torch.int8)
    # ...readable by safetensors itself, the same tensors...
    assert all(
        torch.equal(tensor, state[name])
        for name, tensor in load_file(converted_path(converted, INT8_NAME)).items()
    )
    # ...and a file laid out without that care (safetensors' own order) is refused at load, not
    # run into a crash.
    misaligned = tmp_path / "misaligned.safetensors"
    for pad in range(0, ALIGNMENT, 8):
        save_file(state, str(misaligned), metadata={"pad": " " * pad})
        if any(t.data_ptr() % ALIGNMENT for t in load_file(misaligned).values() if t.dtype == torch.int8):
            break
    with pytest.raises(EngineLoadError, match="aligned"):
        load_int8(load_llm(converted), load_file(misaligned))


# --- what convert computes so that the load need not ---------------------------------------------


def _directory(converted: Path, into: Path, without: set[str]) -> Path:
    """A model directory of ``converted``'s files but ``without`` (links, as the fixture makes)."""
    for path in converted.iterdir():
        if path.name not in without:
            (into / path.name).symlink_to(path.resolve())
    return into


PREPARED = {converted_path(Path(), name).name for name in (INT8_NAME, POSITIONS_NAME)}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_mapped_int8_lm_and_position_keys_are_what_the_load_computes(
    converted: Path, tmp_path: Path, precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory as a convert before these files left it: the load computes them (and still works).
    older = _directory(converted, tmp_path, without=PREPARED)
    computed = _with_precision(load_llm(older), precision, older)
    with monkeypatch.context() as patch:  # nothing is computed where the files are
        patch.setattr(TransformerLM, "_ensure_pos_keys", _not_at_load)
        patch.setattr(runtime, "to_int8", _not_at_load)
        mapped = _with_precision(load_llm(converted), precision, converted)
    assert len(mapped._pos_keys) == len(computed._pos_keys)
    assert all(torch.equal(a, b) for a, b in zip(mapped._pos_keys, computed._pos_keys, strict=True))
    text, embedding = text_ids(9, 3), speaker(converted)
    forced = torch.randint(0, 4096, (12,), generator=torch.Generator().manual_seed(4)).tolist()
    assert torch.equal(
        lite_logps(mapped, text, embedding, forced), lite_logps(computed, text, embedding, forced)
    )


def _not_at_load(*args: object) -> None:
    raise AssertionError("computed at load although convert wrote it")


def test_files_made_from_other_weights_are_refused(converted: Path, tmp_path: Path) -> None:
    directory = _directory(converted, tmp_path, without={MANIFEST})
    manifest = json.loads((converted / MANIFEST).read_text())
    (directory / MANIFEST).write_text(json.dumps({**manifest, "version": "0" * 16}))
    for name in (INT8_NAME, POSITIONS_NAME, BF16_NAME):
        with pytest.raises(EngineLoadError, match=rf"{name}.*{manifest['version']}.*run convert again"):
            derived_state(directory, name)
    for precision in ("fp32", "int8", "fast"):
        with pytest.raises(EngineLoadError, match="run convert again"):
            load_runtime(directory, precision=precision)


def test_an_unstamped_file_is_refused_unless_older_converts_wrote_it(converted: Path, tmp_path: Path) -> None:
    directory = _directory(converted, tmp_path, without={converted_path(Path(), BF16_NAME).name, *PREPARED})
    for name in (BF16_NAME, INT8_NAME, POSITIONS_NAME):  # safetensors' own writer: no version stamp
        save_file(read_safetensors(converted_path(converted, name))[0], str(converted_path(directory, name)))
    assert derived_state(directory, BF16_NAME).keys() == derived_state(converted, BF16_NAME).keys()
    for name in (INT8_NAME, POSITIONS_NAME):
        with pytest.raises(EngineLoadError, match="run convert again"):
            derived_state(directory, name)


def test_position_keys_of_another_shape_are_refused(converted: Path, tmp_path: Path) -> None:
    directory = _directory(converted, tmp_path, without=PREPARED)
    keys = read_safetensors(converted_path(converted, POSITIONS_NAME))[0]
    version = json.loads((converted / MANIFEST).read_text())["version"]
    short = {"fp32": keys["fp32"][:, :, :-1].contiguous(), "int8": keys["int8"]}
    write_safetensors(short, converted_path(directory, POSITIONS_NAME), {SOURCE: version}, ALIGNMENT)
    with pytest.raises(EngineLoadError, match=rf"{POSITIONS_NAME}.*run convert again"):
        _with_precision(load_llm(directory), "fp32", directory)


def test_a_truncated_or_malformed_file_is_refused(converted: Path, tmp_path: Path) -> None:
    data = converted_path(converted, "hift").read_bytes()
    unknown_dtype = json.dumps({"t": {"dtype": "X9", "shape": [1], "data_offsets": [0, 1]}}).encode()
    for content in (
        data[: len(data) // 2],
        data[:5],
        len(unknown_dtype).to_bytes(8, "little") + unknown_dtype + b"\0",
    ):
        (tmp_path / "hift.safetensors").write_bytes(content)
        with pytest.raises(EngineLoadError, match="run convert again"):
            read_safetensors(tmp_path / "hift.safetensors")


def test_the_load_leaves_what_was_imported_out_of_the_collectors_full_passes(converted: Path) -> None:
    gc.unfreeze()
    try:
        load_runtime(converted, precision="fp32")
        assert gc.get_freeze_count() > 10_000  # torch's objects at least (~170k)
    finally:
        gc.unfreeze()
