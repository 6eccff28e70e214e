"""Inference-only HiFT vocoder of CosyVoice v1 (80-bin mel -> 22050 Hz waveform).

Written for this project after reading upstream ``cosyvoice/hifigan/{generator,f0_predictor}.py``
and ``cosyvoice/transformer/activation.py`` (``Snake``) at commit 46dfe04. Module and parameter
names equal upstream's. Upstream wraps most convolutions in weight norm; here they are plain
convolutions and a load hook folds ``weight_g``/``weight_v`` (``torch.nn.utils.weight_norm``) or
``parametrizations.weight.original0/1`` (``torch.nn.utils.parametrizations.weight_norm``, what
upstream's ``state_dict()`` holds under torch 2.x) into ``weight`` with the same
``torch._weight_norm`` upstream evaluates on every forward, so ``strict=True`` loading still
checks every key and the weights are bit-identical.

Full-size numbers (examples/libritts/cosyvoice/conf/cosyvoice.yaml of FunAudioLLM/CosyVoice):
``HiFTGenerator(in_channels=80, base_channels=512, nb_harmonics=8, sampling_rate=22050,
nsf_alpha=0.1, nsf_sigma=0.003, nsf_voiced_threshold=10, upsample_rates=[8, 8],
upsample_kernel_sizes=[16, 16], istft_params={n_fft: 16, hop_len: 4}, resblock_kernel_sizes=[3, 7,
11], resblock_dilation_sizes=[[1, 3, 5]] * 3, source_resblock_kernel_sizes=[7, 11],
source_resblock_dilation_sizes=[[1, 3, 5]] * 2, lrelu_slope=0.1, audio_limit=0.99)`` with
``ConvRNNF0Predictor(num_class=1, in_channels=80, cond_channels=512)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Suffixes of the two weight-norm tensors (magnitude g, direction v) in each saved form.
WEIGHT_NORM_FORMS = (
    ("weight_g", "weight_v"),
    ("parametrizations.weight.original0", "parametrizations.weight.original1"),
)


def fold_weight_norm(state_dict: dict[str, torch.Tensor]) -> None:
    """Replace every weight-norm pair in ``state_dict`` by the ``weight`` it stands for, in place.

    Weight norm in torch (both APIs) uses dim=0, which is also upstream's choice everywhere.
    """
    for g_suffix, v_suffix in WEIGHT_NORM_FORMS:
        for key in [k for k in state_dict if k.endswith("." + g_suffix)]:
            stem = key[: -len(g_suffix)]
            g = state_dict.pop(key)
            v = state_dict.pop(stem + v_suffix)
            state_dict[stem + "weight"] = torch._weight_norm(v, g, 0)


def _fold_on_load(module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, *_: object) -> None:
    fold_weight_norm(state_dict)


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return int((kernel_size * dilation - dilation) / 2)


class Snake(nn.Module):
    """x + 1/alpha * sin^2(alpha * x), per channel (linear-scale alpha, as upstream configures)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.unsqueeze(0).unsqueeze(-1)
        return x + (1.0 / (alpha + 1e-9)) * torch.sin(x * alpha).pow(2)


class ResBlock(nn.Module):
    """HiFi-GAN residual block with Snake activations (upstream ``ResBlock``)."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, padding=get_padding(kernel_size)) for _ in dilations
        )
        self.activations1 = nn.ModuleList(Snake(channels) for _ in dilations)
        self.activations2 = nn.ModuleList(Snake(channels) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2, act1, act2 in zip(
            self.convs1, self.convs2, self.activations1, self.activations2, strict=True
        ):
            x = conv2(act2(conv1(act1(x)))) + x
        return x


class ConvRNNF0Predictor(nn.Module):
    """Mel -> F0 in Hz: five conv+ELU layers and a linear head (upstream ``ConvRNNF0Predictor``)."""

    def __init__(self, num_class: int = 1, in_channels: int = 80, cond_channels: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(5):
            layers += [
                nn.Conv1d(in_channels if i == 0 else cond_channels, cond_channels, 3, padding=1),
                nn.ELU(),
            ]
        self.condnet = nn.Sequential(*layers)
        self.classifier = nn.Linear(cond_channels, num_class)
        self.register_load_state_dict_pre_hook(_fold_on_load)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 80, T) -> (B, T)."""
        return torch.abs(self.classifier(self.condnet(x).transpose(1, 2)).squeeze(-1))


class SineGen(nn.Module):
    """Harmonic sine source from F0, upstream's 22050 Hz ``SineGen`` (random phases and noise)."""

    def __init__(
        self,
        samp_rate: int,
        harmonic_num: int,
        sine_amp: float,
        noise_std: float,
        voiced_threshold: float,
    ) -> None:
        super().__init__()
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.harmonic_num = harmonic_num
        self.sampling_rate = samp_rate
        self.voiced_threshold = voiced_threshold

    def forward(self, f0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """F0 (B, 1, L) in Hz -> sines plus noise (B, harmonic_num + 1, L).

        The two random draws are upstream's, in its order and shapes: ``Uniform(-pi, pi)``
        initial phases (B, H+1, 1), then Gaussian noise like the sines.
        """
        harmonics = torch.arange(1, self.harmonic_num + 2, device=f0.device, dtype=f0.dtype)
        f_mat = f0 * harmonics.view(1, -1, 1) / self.sampling_rate
        theta = 2 * math.pi * (torch.cumsum(f_mat, dim=-1) % 1)
        # torch.distributions.Uniform(low, high).sample(): low + rand * (high - low), in float32.
        low, high = torch.tensor(-math.pi), torch.tensor(math.pi)
        rand = torch.rand((f0.size(0), self.harmonic_num + 1, 1), generator=generator, device=f0.device)
        phase = (low + rand * (high - low)).to(f0.device)
        phase[:, 0, :] = 0
        sines = self.sine_amp * torch.sin(theta + phase)
        uv = (f0 > self.voiced_threshold).to(torch.float32)
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        noise = noise_amp * torch.randn(
            sines.shape, generator=generator, dtype=sines.dtype, device=sines.device
        )
        return sines * uv + noise


class SourceModuleHnNSF(nn.Module):
    """Merges the harmonics into one excitation signal: tanh(linear(harmonics))."""

    def __init__(
        self,
        sampling_rate: int,
        harmonic_num: int,
        sine_amp: float,
        add_noise_std: float,
        voiced_threshod: float,
    ) -> None:
        super().__init__()
        self.l_sin_gen = SineGen(sampling_rate, harmonic_num, sine_amp, add_noise_std, voiced_threshod)
        self.l_linear = nn.Linear(harmonic_num + 1, 1)

    def forward(self, f0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """F0 (B, 1, L) -> excitation (B, 1, L)."""
        sines = self.l_sin_gen(f0, generator).transpose(1, 2)
        excitation = torch.tanh(self.l_linear(sines)).transpose(1, 2)
        # Upstream also draws a (B, L, 1) noise tensor it never uses for the waveform; drawing it
        # too keeps the random stream where upstream leaves it, so later draws (the next
        # sentence's flow noise) stay identical under a shared seed.
        torch.randn((f0.size(0), f0.size(-1), 1), generator=generator, device=f0.device)
        return excitation


class HiFTGenerator(nn.Module):
    """Neural source filter + iSTFTNet generator (upstream ``HiFTGenerator``), 22050 Hz only."""

    def __init__(
        self,
        f0_predictor: ConvRNNF0Predictor,
        in_channels: int = 80,
        base_channels: int = 512,
        nb_harmonics: int = 8,
        sampling_rate: int = 22050,
        nsf_alpha: float = 0.1,
        nsf_sigma: float = 0.003,
        nsf_voiced_threshold: float = 10,
        upsample_rates: Sequence[int] = (8, 8),
        upsample_kernel_sizes: Sequence[int] = (16, 16),
        istft_params: Mapping[str, int] | None = None,
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        source_resblock_kernel_sizes: Sequence[int] = (7, 11),
        source_resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5)),
        lrelu_slope: float = 0.1,
        audio_limit: float = 0.99,
    ) -> None:
        super().__init__()
        if sampling_rate != 22050:
            # Upstream switches to a different sine generator (SineGen2) for other rates.
            raise ValueError("only the 22050 Hz HiFT of CosyVoice v1 is implemented")
        istft_params = dict(istft_params or {"n_fft": 16, "hop_len": 4})
        self.n_fft = istft_params["n_fft"]
        self.hop_len = istft_params["hop_len"]
        self.sampling_rate = sampling_rate
        self.lrelu_slope = lrelu_slope
        self.audio_limit = audio_limit
        self.num_kernels = len(resblock_kernel_sizes)
        self.num_upsamples = len(upsample_rates)
        self.upsample_factor = math.prod(upsample_rates) * self.hop_len
        self.m_source = SourceModuleHnNSF(
            sampling_rate, nb_harmonics, nsf_alpha, nsf_sigma, nsf_voiced_threshold
        )
        self.conv_pre = nn.Conv1d(in_channels, base_channels, 7, 1, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(
                base_channels // 2**i, base_channels // 2 ** (i + 1), k, u, padding=(k - u) // 2
            )
            for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True))
        )
        # The source's spectrum enters at each upsampling level, strided down to that level's rate.
        cum_rates = [math.prod(upsample_rates[::-1][:i]) for i in range(len(upsample_rates))][::-1]
        self.source_downs = nn.ModuleList()
        self.source_resblocks = nn.ModuleList()
        for i, (u, k, d) in enumerate(
            zip(cum_rates, source_resblock_kernel_sizes, source_resblock_dilation_sizes, strict=False)
        ):
            ch = base_channels // 2 ** (i + 1)
            self.source_downs.append(
                nn.Conv1d(self.n_fft + 2, ch, 1, 1)
                if u == 1
                else nn.Conv1d(self.n_fft + 2, ch, u * 2, u, padding=u // 2)
            )
            self.source_resblocks.append(ResBlock(ch, k, d))
        self.resblocks = nn.ModuleList(
            ResBlock(base_channels // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True)
        )
        self.conv_post = nn.Conv1d(base_channels // 2 ** len(self.ups), self.n_fft + 2, 7, 1, padding=3)
        # scipy's get_window("hann", n_fft, fftbins=True) (float64, then float32) is the periodic Hann.
        self.register_buffer(
            "stft_window",
            torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64).float(),
            persistent=False,
        )
        self.f0_predictor = f0_predictor
        self.register_load_state_dict_pre_hook(_fold_on_load)

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) -> real and imaginary parts stacked on channels (B, n_fft + 2, frames)."""
        spec = torch.stft(
            x, self.n_fft, self.hop_len, self.n_fft, window=self.stft_window, return_complex=True
        )
        spec = torch.view_as_real(spec)
        return torch.cat([spec[..., 0], spec[..., 1]], dim=1)

    def convolutions(self) -> dict[str, nn.Module]:
        """The convolution stack by attribute name: what the ``fast`` precision runs in bfloat16
        (not parity); the F0 predictor, the source and the (i)STFT stay float32."""
        names = ("conv_pre", "ups", "source_downs", "source_resblocks", "resblocks", "conv_post")
        return {name: getattr(self, name) for name in names}

    def decode(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """Mel (B, 80, T) and excitation (B, 1, T * upsample_factor) -> waveform (B, samples)."""
        dtype = self.conv_pre.weight.dtype
        s_stft = self._stft(source.squeeze(1)).to(dtype)
        x = self.conv_pre(x.to(dtype))
        for i in range(self.num_upsamples):
            x = self.ups[i](F.leaky_relu(x, self.lrelu_slope))
            if i == self.num_upsamples - 1:
                x = F.pad(x, (1, 0), mode="reflect")
            x = x + self.source_resblocks[i](self.source_downs[i](s_stft))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs += block(x)
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x)).float()  # upstream uses the default 0.01 slope here
        half = self.n_fft // 2 + 1
        magnitude = torch.clip(torch.exp(x[:, :half, :]), max=1e2)
        phase = torch.sin(x[:, half:, :])
        spec = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
        audio = torch.istft(spec, self.n_fft, self.hop_len, self.n_fft, window=self.stft_window)
        return torch.clamp(audio, -self.audio_limit, self.audio_limit)

    @torch.inference_mode()
    def inference(self, speech_feat: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mel (B, 80, T) -> waveform (B, T * 256) in [-audio_limit, audio_limit].

        Random draws (source phases and noise) come from ``generator``, else torch's global
        generator, in the same order and shapes as upstream.
        """
        return self.decode(speech_feat, self.source(speech_feat, generator))

    def source(self, speech_feat: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mel (B, 80, T) -> the excitation source (B, 1, T * 256) from the predicted F0."""
        f0 = self.f0_predictor(speech_feat)
        f0 = f0.unsqueeze(1).repeat_interleave(self.upsample_factor, dim=2)  # nearest upsampling
        return self.m_source(f0, generator)
