"""Parity of the lite flow (tokens + x-vector -> mel) with upstream's, on a shrunk random model.

Same architecture as CosyVoice-300M's flow (examples/libritts/cosyvoice/conf/cosyvoice.yaml)
with small widths; the mel width stays 80 because upstream's Euler solver hard-codes it.
"""

from __future__ import annotations

import pytest
import torch

from function.engines.cosyvoice import flow as lite
from function.engines.cosyvoice.transformer import ConformerEncoder
from loadtest.upstream_cosyvoice import install_stubs
from tests.cosyvoice.parity import TOLERANCE, max_abs_diff, randomize

ENCODER = dict(
    input_size=32,
    output_size=48,
    attention_heads=4,
    linear_units=64,
    num_blocks=2,
    dropout_rate=0.1,
    positional_dropout_rate=0.1,
    attention_dropout_rate=0.1,
    normalize_before=True,
    input_layer="linear",
    pos_enc_layer_type="rel_pos_espnet",
    selfattention_layer_type="rel_selfattn",
    use_cnn_module=False,
    macaron_style=False,
)
REGULATOR = dict(channels=80, sampling_ratios=[1, 1])
CFM = dict(in_channels=240, n_spks=1, spk_emb_dim=80)
CFM_PARAMS = dict(
    sigma_min=1e-06,
    solver="euler",
    t_scheduler="cosine",
    training_cfg_rate=0.2,
    inference_cfg_rate=0.7,
    reg_loss_type="l1",
)
ESTIMATOR = dict(
    in_channels=320,
    out_channels=80,
    channels=[32, 32],
    dropout=0.0,
    attention_head_dim=8,
    n_blocks=2,
    num_mid_blocks=2,
    num_heads=2,
    act_fn="gelu",
)
FLOW = dict(input_size=32, output_size=80, spk_embed_dim=16, vocab_size=64, input_frame_rate=50)


def build_upstream() -> torch.nn.Module:
    install_stubs()
    from cosyvoice.flow.decoder import ConditionalDecoder
    from cosyvoice.flow.flow import MaskedDiffWithXvec
    from cosyvoice.flow.flow_matching import ConditionalCFM
    from cosyvoice.flow.length_regulator import InterpolateRegulator
    from cosyvoice.transformer.encoder import ConformerEncoder as UpstreamEncoder
    from omegaconf import DictConfig

    torch.manual_seed(0)
    model = MaskedDiffWithXvec(
        **FLOW,
        only_mask_loss=True,
        encoder=UpstreamEncoder(**ENCODER),
        length_regulator=InterpolateRegulator(**REGULATOR),
        decoder=ConditionalCFM(
            **CFM, cfm_params=DictConfig(CFM_PARAMS), estimator=ConditionalDecoder(**ESTIMATOR)
        ),
    ).eval()
    randomize(model, 2)
    # Keep activations O(1) through the deep random U-Net so an absolute tolerance is meaningful.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() > 1 and "decoder" in name:
                param.mul_(1.0 / param[0].numel() ** 0.5 / 0.3)
    return model


def build_lite() -> lite.MaskedDiffWithXvec:
    return lite.MaskedDiffWithXvec(
        **FLOW,
        only_mask_loss=True,
        encoder=ConformerEncoder(**ENCODER),
        length_regulator=lite.InterpolateRegulator(**REGULATOR),
        decoder=lite.ConditionalCFM(**CFM, **CFM_PARAMS, estimator=lite.ConditionalDecoder(**ESTIMATOR)),
    ).eval()


@pytest.fixture(scope="module")
def models() -> tuple[torch.nn.Module, lite.MaskedDiffWithXvec]:
    ref = build_upstream()
    mine = build_lite()
    mine.load_state_dict(ref.state_dict(), strict=True)
    return ref, mine


def upstream_mel(ref: torch.nn.Module, token: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    mel, _ = ref.inference(
        token=token,
        token_len=torch.tensor([token.shape[1]], dtype=torch.int32),
        prompt_token=torch.zeros(1, 0, dtype=torch.int32),
        prompt_token_len=torch.tensor([0], dtype=torch.int32),
        prompt_feat=torch.zeros(1, 0, 80),
        prompt_feat_len=torch.tensor([0], dtype=torch.int32),
        embedding=embedding,
        flow_cache=torch.zeros(1, 80, 0, 2),
    )
    return mel


def report(stage: str, diff: float) -> None:
    print(f"flow {stage}: max abs diff {diff:.3e}")
    assert diff <= TOLERANCE, stage


# 30 tokens interpolate in one piece; 57 take upstream's separate-edges path (> 40 tokens).
@pytest.mark.parametrize("n_tokens", [30, 57])
def test_flow_stages_and_mel(models: tuple[torch.nn.Module, lite.MaskedDiffWithXvec], n_tokens: int) -> None:
    ref, mine = models
    gen = torch.Generator().manual_seed(n_tokens)
    token = torch.randint(0, FLOW["vocab_size"], (1, n_tokens), generator=gen, dtype=torch.int32)
    embedding = torch.randn(1, FLOW["spk_embed_dim"], generator=gen)
    frames = lite.mel_frames(n_tokens, FLOW["input_frame_rate"])

    with torch.inference_mode():
        # Encoder + projection.
        lens = torch.tensor([n_tokens])
        want_h = ref.encoder_proj(ref.encoder(ref.input_embedding(token), lens)[0])
        got_h = mine.encoder_proj(mine.encoder(mine.input_embedding(token), lens)[0])
        report(f"{n_tokens} tokens encoder", max_abs_diff(got_h, want_h))
        # Length regulator.
        want_mu, want_len = ref.length_regulator.inference(want_h[:, :0], want_h, 0, frames, 50)
        got_mu = mine.length_regulator(want_h, frames, 50)
        assert want_len == frames
        report(f"{n_tokens} tokens regulator", max_abs_diff(got_mu, want_mu.transpose(1, 2)))
        # One estimator call, with a padded second row so the masked path is compared too.
        x = torch.randn(2, 80, frames, generator=gen)
        mu = torch.randn(2, 80, frames, generator=gen)
        cond = torch.randn(2, 80, frames, generator=gen)
        spks = torch.randn(2, 80, generator=gen)
        t = torch.tensor([0.3, 0.3])
        mask = torch.ones(2, 1, frames)
        mask[1, :, frames - 7 :] = 0
        want_v = ref.decoder.estimator(x, mask, mu, t, spks, cond)
        got_v = mine.decoder.estimator(x, mask, mu, t, spks, cond)
        report(f"{n_tokens} tokens estimator", max_abs_diff(got_v, want_v))

    # Whole flow, noise from the global generator under the same seed (upstream's randn_like).
    torch.manual_seed(1234)
    want_mel = upstream_mel(ref, token, embedding)
    torch.manual_seed(1234)
    got_mel = mine.inference(token, embedding)
    assert got_mel.shape == (1, 80, frames)
    report(f"{n_tokens} tokens mel (seeded)", max_abs_diff(got_mel, want_mel))
    assert want_mel.abs().max() > 0.1  # a real signal, not an all-zero agreement

    # Explicit noise: the same tensor upstream drew under that seed.
    torch.manual_seed(1234)
    noise = torch.randn(1, 80, frames)
    got_mel = mine.inference(token, embedding, noise=noise)
    report(f"{n_tokens} tokens mel (explicit noise)", max_abs_diff(got_mel, want_mel))
