"""Parity of the lite HiFT vocoder with upstream's, on a shrunk random model.

Same architecture as CosyVoice-300M's HiFT (examples/libritts/cosyvoice/conf/cosyvoice.yaml):
22050 Hz, NSF source with 8 harmonics, two upsampling levels, iSTFT (n_fft 16, hop 4), with
narrow channels and fewer resblocks.
"""

from __future__ import annotations

import pytest
import torch

from function.engines.cosyvoice import hift as lite
from loadtest.upstream_cosyvoice import install_stubs
from tests.cosyvoice.parity import TOLERANCE, max_abs_diff, randomize

HOP = 256  # samples per mel frame: upsample_rates 8 * 8 * istft hop 4
F0 = dict(num_class=1, in_channels=80, cond_channels=32)
HIFT = dict(
    in_channels=80,
    base_channels=32,
    nb_harmonics=8,
    sampling_rate=22050,
    nsf_alpha=0.1,
    nsf_sigma=0.003,
    nsf_voiced_threshold=10,
    upsample_rates=[8, 8],
    upsample_kernel_sizes=[16, 16],
    istft_params={"n_fft": 16, "hop_len": 4},
    resblock_kernel_sizes=[3, 7],
    resblock_dilation_sizes=[[1, 3], [1, 3]],
    source_resblock_kernel_sizes=[7, 11],
    source_resblock_dilation_sizes=[[1, 3], [1, 3]],
    lrelu_slope=0.1,
    audio_limit=0.99,
)


def build_upstream() -> torch.nn.Module:
    install_stubs()
    from cosyvoice.hifigan.f0_predictor import ConvRNNF0Predictor
    from cosyvoice.hifigan.generator import HiFTGenerator

    torch.manual_seed(0)
    model = HiFTGenerator(**HIFT, f0_predictor=ConvRNNF0Predictor(**F0)).eval()
    randomize(model, 3)
    with torch.no_grad():
        # Weight-normed convolutions get per-channel norms near 1 so activations stay O(1); F0
        # lands in a voice-like range with both voiced and unvoiced frames (threshold 10 Hz).
        for name, param in model.named_parameters():
            if name.endswith("original0"):
                param.copy_(torch.rand(param.shape, generator=torch.Generator().manual_seed(4)) * 0.4 + 0.8)
        model.f0_predictor.classifier.weight.mul_(40.0)
        # A small output layer keeps the waveform below audio_limit, so the final clamp cannot
        # hide differences.
        model.conv_post.parametrizations.weight.original0.mul_(0.015)
    return model


@pytest.fixture(scope="module")
def models() -> tuple[torch.nn.Module, lite.HiFTGenerator]:
    ref = build_upstream()
    mine = lite.HiFTGenerator(**HIFT, f0_predictor=lite.ConvRNNF0Predictor(**F0)).eval()
    state = ref.state_dict()
    assert any(".parametrizations.weight.original0" in key for key in state)  # weight norm saved
    mine.load_state_dict(state, strict=True)
    return ref, mine


def report(stage: str, diff: float) -> None:
    print(f"hift {stage}: max abs diff {diff:.3e}")
    assert diff <= TOLERANCE, stage


def test_weight_norm_forms_load_identically(models: tuple[torch.nn.Module, lite.HiFTGenerator]) -> None:
    """Old-style ``weight_g``/``weight_v`` checkpoints fold to the same weights."""
    ref, mine = models
    legacy = {
        key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): value
        for key, value in ref.state_dict().items()
    }
    assert any(key.endswith("weight_g") for key in legacy)
    other = lite.HiFTGenerator(**HIFT, f0_predictor=lite.ConvRNNF0Predictor(**F0)).eval()
    other.load_state_dict(legacy, strict=True)
    for (name, a), (_, b) in zip(mine.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(mine.conv_pre.weight, ref.conv_pre.weight)  # upstream's effective weight


@pytest.mark.parametrize("frames", [23, 60])
def test_hift_stages_and_waveform(models: tuple[torch.nn.Module, lite.HiFTGenerator], frames: int) -> None:
    ref, mine = models
    gen = torch.Generator().manual_seed(frames)
    mel = torch.randn(1, 80, frames, generator=gen)

    with torch.inference_mode():
        want_f0 = ref.f0_predictor(mel)
        got_f0 = mine.f0_predictor(mel)
        report(f"{frames} frames f0", max_abs_diff(got_f0, want_f0))
        assert (want_f0 > 10).any() and (want_f0 < 10).any()  # voiced and unvoiced frames

        # Source module under the same seed.
        f0_up = ref.f0_upsamp(want_f0[:, None]).transpose(1, 2)
        torch.manual_seed(7)
        want_source = ref.m_source(f0_up)[0].transpose(1, 2)
        torch.manual_seed(7)
        got_source = mine.m_source(want_f0.unsqueeze(1).repeat_interleave(HOP, dim=2), None)
        report(f"{frames} frames source", max_abs_diff(got_source, want_source))

        report(
            f"{frames} frames decode",
            max_abs_diff(mine.decode(mel, want_source), ref.decode(mel, want_source)),
        )

    torch.manual_seed(11)
    want, _ = ref.inference(speech_feat=mel, cache_source=torch.zeros(1, 1, 0))
    after_upstream = torch.rand(4)
    torch.manual_seed(11)
    got = mine.inference(mel)
    after_lite = torch.rand(4)
    report(f"{frames} frames waveform", max_abs_diff(got, want))
    assert 0.05 < want.abs().max() < HIFT["audio_limit"]  # a real signal, unclamped
    # The random stream is left where upstream leaves it.
    assert torch.equal(after_lite, after_upstream)

    # A seeded generator instead of the global one gives the same waveform.
    got_gen = mine.inference(mel, generator=torch.Generator().manual_seed(11))
    report(f"{frames} frames waveform (generator)", max_abs_diff(got_gen, want))


def test_hift_audio_is_sane(models: tuple[torch.nn.Module, lite.HiFTGenerator]) -> None:
    """The lite vocoder alone: finite, audible, one hop of samples per mel frame, within limits."""
    _, mine = models
    frames = 40
    mel = torch.randn(1, 80, frames, generator=torch.Generator().manual_seed(5))
    audio = mine.inference(mel, generator=torch.Generator().manual_seed(0))
    assert audio.shape == (1, frames * HOP)
    assert torch.isfinite(audio).all()
    rms = audio.pow(2).mean().sqrt().item()
    print(f"hift sanity: {audio.shape[1]} samples, rms {rms:.4f}, peak {audio.abs().max().item():.4f}")
    assert rms > 1e-3
    assert audio.abs().max() < HIFT["audio_limit"]
