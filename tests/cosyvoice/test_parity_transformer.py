"""Parity of the lite Transformer/Conformer encoders with upstream's, on shrunk random weights."""

from __future__ import annotations

import pytest
import torch

from function.engines.cosyvoice import transformer as lite
from loadtest.upstream_cosyvoice import install_stubs
from tests.cosyvoice.parity import TOLERANCE, randomize

# Shrunk versions of the v1 encoders (examples/libritts/cosyvoice/conf/cosyvoice.yaml): same
# options, small widths. "conformer_full" also covers the macaron FFN and convolution module.
CASES = {
    "flow_encoder": (
        "ConformerEncoder",
        dict(
            input_size=24,
            output_size=32,
            attention_heads=4,
            linear_units=48,
            num_blocks=2,
            input_layer="linear",
            pos_enc_layer_type="rel_pos_espnet",
            selfattention_layer_type="rel_selfattn",
            use_cnn_module=False,
            macaron_style=False,
        ),
    ),
    "llm_text_encoder": (
        "ConformerEncoder",
        dict(
            input_size=24,
            output_size=32,
            attention_heads=4,
            linear_units=48,
            num_blocks=2,
            input_layer="linear",
            pos_enc_layer_type="rel_pos_espnet",
            selfattention_layer_type="rel_selfattn",
            use_cnn_module=False,
            macaron_style=False,
            static_chunk_size=1,
        ),
    ),
    "llm_lm": (
        "TransformerEncoder",
        dict(
            input_size=32,
            output_size=32,
            attention_heads=4,
            linear_units=48,
            num_blocks=2,
            input_layer="linear_legacy",
            pos_enc_layer_type="rel_pos_espnet",
            selfattention_layer_type="rel_selfattn",
            static_chunk_size=1,
        ),
    ),
    "conformer_full": (
        "ConformerEncoder",
        dict(
            input_size=24,
            output_size=32,
            attention_heads=4,
            linear_units=48,
            num_blocks=2,
            input_layer="linear",
            pos_enc_layer_type="rel_pos_espnet",
            selfattention_layer_type="rel_selfattn",
            use_cnn_module=True,
            macaron_style=True,
            cnn_module_kernel=5,
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_encoder_parity(case: str) -> None:
    install_stubs()
    from cosyvoice.transformer import encoder as upstream

    cls_name, kwargs = CASES[case]
    torch.manual_seed(0)
    ref = getattr(upstream, cls_name)(**kwargs).eval()
    randomize(ref, 1)
    mine = getattr(lite, cls_name)(**kwargs).eval()
    mine.load_state_dict(ref.state_dict(), strict=True)

    xs = torch.randn(2, 11, kwargs["input_size"])
    # A padded batch (masks in play) and a single unpadded utterance (the no-mask fast path).
    for batch, lens in ((xs, torch.tensor([11, 7])), (xs[:1], torch.tensor([11]))):
        with torch.inference_mode():
            want, want_mask = ref(batch, lens, decoding_chunk_size=1, num_decoding_left_chunks=-1)
            got, got_mask = mine(batch, lens)
        assert torch.equal(got_mask, want_mask)
        valid = want_mask.transpose(1, 2).expand_as(want)  # padded frames are unspecified
        diff = (got - want)[valid].abs().max().item()
        print(f"{case} batch {len(batch)}: max abs diff {diff:.3e}")
        assert diff <= TOLERANCE
