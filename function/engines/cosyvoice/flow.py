"""Inference-only flow of CosyVoice v1 (speech tokens + speaker embedding -> 80-bin mel).

Written for this project after reading upstream ``cosyvoice/flow/{flow,flow_matching,decoder,
length_regulator}.py`` and ``matcha/models/components/{decoder,transformer,flow_matching}.py``
(commit 46dfe04) and diffusers' ``Attention``/``GELU``. Module and parameter names equal
upstream's, so an official ``flow.pt`` loads with ``strict=True``.

Full-size numbers (examples/libritts/cosyvoice/conf/cosyvoice.yaml of FunAudioLLM/CosyVoice):
``MaskedDiffWithXvec(input_size=512, output_size=80, spk_embed_dim=192, vocab_size=4096,
input_frame_rate=50)``; encoder ``ConformerEncoder(512 -> 512, 8 heads, 2048 units, 6 blocks,
linear input, rel_pos_espnet, no macaron, no conv module)``; ``InterpolateRegulator(channels=80,
sampling_ratios=[1, 1, 1, 1])``; ``ConditionalCFM(in_channels=240, n_spks=1, spk_emb_dim=80,
sigma_min=1e-6, solver=euler, t_scheduler=cosine, inference_cfg_rate=0.7)`` with estimator
``ConditionalDecoder(in_channels=320, out_channels=80, channels=[256, 256], attention_head_dim=64,
n_blocks=4, num_mid_blocks=12, num_heads=8, act_fn=gelu)``; 10 Euler steps (upstream hard-codes
``n_timesteps=10`` in ``MaskedDiffWithXvec.inference``).

Only the SFT path is implemented: no prompt speech (zero-shot cloning); upstream's streaming cache
is kept by ``streamed.py`` between ``conditions`` and ``decode``.
What does not depend on the solver step (the conditioning channels, the time embeddings, the
masks) is computed once per utterance instead of once per step; the arithmetic is upstream's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from function.engines.cosyvoice import sinusoids
from function.engines.cosyvoice.options import drop_training_only
from function.engines.cosyvoice.transformer import ConformerEncoder

# Upstream hard-codes the mel frame rate as 22050 Hz / hop 256 in the flow.
SAMPLE_RATE = 22050
HOP = 256
# InterpolateRegulator.inference stretches the first and last 20 tokens on their own.
EDGE_TOKENS = 20


def mel_frames(n_tokens: int, token_rate: int) -> int:
    """Mel frames for ``n_tokens`` speech tokens, with upstream's float arithmetic and rounding."""
    return int(n_tokens / token_rate * SAMPLE_RATE / HOP)


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``x * mask``; None stands for an all-ones mask (multiplying by 1 changes nothing)."""
    return x if mask is None else x * mask


class Block1D(nn.Module):
    """Conv(3) -> GroupNorm -> Mish, masked before and after (matcha ``Block1D``)."""

    def __init__(self, dim: int, dim_out: int, groups: int = 8) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(dim, dim_out, 3, padding=1), nn.GroupNorm(groups, dim_out), nn.Mish()
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return _masked(self.block(_masked(x, mask)), mask)


class ResnetBlock1D(nn.Module):
    """Two ``Block1D`` with the time embedding added in between, plus a 1x1 residual."""

    def __init__(self, dim: int, dim_out: int, time_emb_dim: int, groups: int = 8) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(time_emb_dim, dim_out))
        self.block1 = Block1D(dim, dim_out, groups)
        self.block2 = Block1D(dim_out, dim_out, groups)
        self.res_conv = nn.Conv1d(dim, dim_out, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, time_emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x, mask) + self.mlp(time_emb).unsqueeze(-1)
        return self.block2(h, mask) + self.res_conv(_masked(x, mask))


class GELUProjection(nn.Module):
    """diffusers ``GELU``: a linear layer followed by exact GELU."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        inner = dim * mult
        # Indices match matcha's ModuleList (activation projection, dropout, output linear).
        self.net = nn.ModuleList([GELUProjection(dim, inner), nn.Identity(), nn.Linear(inner, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.net:
            x = module(x)
        return x


def _back_to_back(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """``torch.cat(tensors)`` as a view, where they already lie one after the other in one
    storage; else None."""
    first = tensors[0]
    offset = first.storage_offset()
    for tensor in tensors:
        if (
            not tensor.is_contiguous()
            or tensor.untyped_storage().data_ptr() != first.untyped_storage().data_ptr()
            or tensor.dtype != first.dtype
            or tensor.shape[1:] != first.shape[1:]
            or tensor.storage_offset() != offset
        ):
            return None
        offset += tensor.numel()
    rows = sum(tensor.shape[0] for tensor in tensors)
    return first.new_empty(0).set_(first.untyped_storage(), first.storage_offset(), (rows, *first.shape[1:]))


class Attention(nn.Module):
    """diffusers ``Attention`` as matcha uses it: self-attention, no q/k/v bias."""

    def __init__(self, query_dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(query_dim, inner, bias=False)
        self.to_v = nn.Linear(query_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Identity()])
        # q, k and v's weights as one matrix (``fuse_projections``), else None.
        self.qkv: torch.Tensor | None = None

    def fuse_projections(self) -> None:
        """One matrix product for q, k and v instead of three (the bf16 path); the three layers'
        weights become views of the fused matrix, so nothing is held twice. Weights that lie back
        to back in one mapped file (``convert`` writes them so) are fused without a copy."""
        weights = [self.to_q.weight.detach(), self.to_k.weight.detach(), self.to_v.weight.detach()]
        self.qkv = _back_to_back(weights)
        if self.qkv is None:
            self.qkv = torch.cat(weights)
        for layer, weight in zip((self.to_q, self.to_k, self.to_v), self.qkv.chunk(3), strict=True):
            layer.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b = x.size(0)
        if self.qkv is None:
            q, k, v = (
                y.view(b, -1, self.heads, y.size(-1) // self.heads).transpose(1, 2)
                for y in (self.to_q(x), self.to_k(x), self.to_v(x))
            )
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            # (b, t, 3 * heads * d) -> q, k, v as (b, heads, t, d) views.
            q, k, v = F.linear(x, self.qkv).view(b, x.size(1), 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            # torch's CPU flash-attention kernel is slow in bf16 at these lengths (a few hundred
            # frames): the plain product, softmax, product is ~20 % faster for the whole flow.
            # The scale is a power of two (d = 64), exact on q as on the scores, and q is smaller.
            scores = torch.matmul(q * q.size(-1) ** -0.5, k.transpose(-1, -2))
            out = torch.matmul((scores if bias is None else scores + bias).softmax(-1), v)
        return self.to_out[0](out.transpose(1, 2).reshape(b, -1, out.size(1) * out.size(3)))


class BasicTransformerBlock(nn.Module):
    """matcha ``BasicTransformerBlock`` with layer norms and no cross-attention."""

    def __init__(self, dim: int, num_attention_heads: int, attention_head_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, num_attention_heads, attention_head_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x), bias)
        return x + self.ff(self.norm3(x))


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels: int, time_embed_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class Downsample1D(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample1D(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose1d(dim, dim, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConditionalDecoder(nn.Module):
    """The 1-D U-Net that estimates the flow's velocity (upstream ``ConditionalDecoder``).

    Each level is ``ModuleList([resnet, ModuleList(transformer blocks), resampler])`` as upstream,
    so state-dict keys match.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (256, 256),
        attention_head_dim: int = 64,
        n_blocks: int = 1,
        num_mid_blocks: int = 2,
        num_heads: int = 4,
        act_fn: str = "snake",
        **training_only: object,
    ) -> None:
        super().__init__()
        drop_training_only("ConditionalDecoder", training_only)
        if act_fn != "gelu":
            raise ValueError(f"unsupported act_fn {act_fn!r} (CosyVoice v1 uses gelu)")
        channels = tuple(channels)
        self.in_channels = in_channels
        self.out_channels = out_channels
        time_embed_dim = channels[0] * 4
        self.time_mlp = TimestepEmbedding(in_channels, time_embed_dim)

        def transformers(dim: int) -> nn.ModuleList:
            return nn.ModuleList(
                BasicTransformerBlock(dim, num_heads, attention_head_dim) for _ in range(n_blocks)
            )

        self.down_blocks = nn.ModuleList()
        output_channel = in_channels
        for i, width in enumerate(channels):
            input_channel, output_channel = output_channel, width
            is_last = i == len(channels) - 1
            down: nn.Module = nn.Conv1d(width, width, 3, padding=1) if is_last else Downsample1D(width)
            self.down_blocks.append(
                nn.ModuleList(
                    [ResnetBlock1D(input_channel, width, time_embed_dim), transformers(width), down]
                )
            )
        self.mid_blocks = nn.ModuleList(
            nn.ModuleList(
                [ResnetBlock1D(channels[-1], channels[-1], time_embed_dim), transformers(channels[-1])]
            )
            for _ in range(num_mid_blocks)
        )
        up_channels = (*channels[::-1], channels[0])
        self.up_blocks = nn.ModuleList()
        for i in range(len(up_channels) - 1):
            width = up_channels[i + 1]
            is_last = i == len(up_channels) - 2
            up: nn.Module = nn.Conv1d(width, width, 3, padding=1) if is_last else Upsample1D(width)
            self.up_blocks.append(
                nn.ModuleList(
                    [ResnetBlock1D(up_channels[i] * 2, width, time_embed_dim), transformers(width), up]
                )
            )
        self.final_block = Block1D(up_channels[-1], up_channels[-1])
        self.final_proj = nn.Conv1d(up_channels[-1], out_channels, 1)

    def embed_time(self, t: torch.Tensor) -> torch.Tensor:
        """(N,) flow times -> (N, time_embed_dim), the input of every resnet's ``mlp``."""
        return self.time_mlp(sinusoids.flow_times(t, self.in_channels).to(self.dtype))

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype: float32 (parity), or bfloat16 in the ``fast`` precision."""
        return self.final_proj.weight.dtype

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        mu: torch.Tensor,
        t: torch.Tensor,
        spks: torch.Tensor,
        cond: torch.Tensor,
    ) -> torch.Tensor:
        """Upstream's signature: (B, 80, T) each, t (B,), spks (B, 80) -> velocity (B, 80, T)."""
        conditioning = torch.cat([mu, spks.unsqueeze(-1).expand(-1, -1, x.size(-1)), cond], dim=1)
        return self.velocity(torch.cat([x, conditioning], dim=1), mask, self.embed_time(t))

    def velocity(self, h: torch.Tensor, mask: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        """U-Net on the packed input ``h`` (B, in_channels, T) with a precomputed time embedding."""
        full = bool(mask.all())
        # Per level: the frame mask (None when nothing is padded) and the attention bias.
        masks = [mask]
        for _ in range(len(self.down_blocks) - 1):
            masks.append(masks[-1][:, :, ::2])
        levels = [(None, None) if full else (m, _attention_bias(m, h.dtype)) for m in masks]

        skips = []
        for (resnet, blocks, down), (m, bias) in zip(self.down_blocks, levels, strict=True):
            h = self._stage(resnet, blocks, h, m, bias, time_emb)
            skips.append(h)
            h = down(_masked(h, m))
        m, bias = levels[-1]
        for resnet, blocks in self.mid_blocks:
            h = self._stage(resnet, blocks, h, m, bias, time_emb)
        for (resnet, blocks, up), (m, bias) in zip(self.up_blocks, reversed(levels), strict=True):
            skip = skips.pop()
            h = torch.cat([h[:, :, : skip.shape[-1]], skip], dim=1)
            h = up(_masked(self._stage(resnet, blocks, h, m, bias, time_emb), m))
        m = levels[0][0]
        h = self.final_proj(_masked(self.final_block(h, m), m))
        return h * mask

    @staticmethod
    def _stage(
        resnet: ResnetBlock1D,
        blocks: nn.ModuleList,
        h: torch.Tensor,
        mask: torch.Tensor | None,
        bias: torch.Tensor | None,
        time_emb: torch.Tensor,
    ) -> torch.Tensor:
        # Contiguous (b, t, c): a transposed view would make every block's layer norms copy their
        # input and its residual sums run strided (the same values, ~7 % of the flow's time).
        h = resnet(h, mask, time_emb).transpose(1, 2).contiguous()
        for block in blocks:
            h = block(h, bias)
        return h.transpose(1, 2)


def _attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, T) frame mask -> (B, 1, 1, T) additive key bias, upstream's ``mask_to_bias``."""
    return ((1.0 - mask.to(dtype)) * -1.0e10).unsqueeze(1)


def cosine_time_steps(
    n_timesteps: int, dtype: torch.dtype = torch.float32
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(t, dt) of each Euler step, accumulated exactly as upstream's ``solve_euler`` does."""
    t_span = torch.linspace(0, 1, n_timesteps + 1, dtype=dtype)
    t_span = 1 - torch.cos(t_span * 0.5 * torch.pi)
    t, dt = t_span[0], t_span[1] - t_span[0]
    steps = []
    for step in range(1, n_timesteps + 1):
        steps.append((t, dt))
        t = t + dt
        if step < n_timesteps:
            dt = t_span[step + 1] - t
    return steps


class ConditionalCFM(nn.Module):
    """Conditional flow matching sampler: Euler steps with classifier-free guidance."""

    def __init__(
        self,
        in_channels: int,
        estimator: ConditionalDecoder,
        n_spks: int = 1,
        spk_emb_dim: int = 64,
        solver: str = "euler",
        t_scheduler: str = "cosine",
        inference_cfg_rate: float = 0.7,
        **training_only: object,
    ) -> None:
        super().__init__()
        drop_training_only("ConditionalCFM", training_only)
        if solver != "euler" or t_scheduler != "cosine":
            raise ValueError("only the euler solver with the cosine t_scheduler is implemented")
        del in_channels, n_spks, spk_emb_dim  # fixed by the estimator's width at inference
        self.inference_cfg_rate = inference_cfg_rate
        self.estimator = estimator

    @torch.inference_mode()
    def forward(
        self,
        mu: torch.Tensor,
        mask: torch.Tensor,
        spks: torch.Tensor,
        cond: torch.Tensor,
        noise: torch.Tensor,
        n_timesteps: int = 10,
    ) -> torch.Tensor:
        """mu, cond, noise (1, 80, T), mask (1, 1, T), spks (1, 80) -> mel (1, 80, T)."""
        x = noise
        # The estimator runs in its weights' dtype; the solver's state x stays float32.
        dtype = self.estimator.dtype
        # Batch row 0 is conditioned; row 1 is the unconditional branch (all conditions zero).
        conditioning = torch.cat([mu, spks.unsqueeze(-1).expand(-1, -1, mu.size(-1)), cond], dim=1)
        conditioning = torch.cat([conditioning, torch.zeros_like(conditioning)], dim=0).to(dtype)
        mask_in = mask.expand(2, -1, -1).to(dtype)
        steps = cosine_time_steps(n_timesteps, mu.dtype)
        time_emb = self.estimator.embed_time(torch.stack([t for t, _ in steps]))
        rate = self.inference_cfg_rate
        for index, (_, dt) in enumerate(steps):
            h = torch.cat([x.expand(2, -1, -1).to(dtype), conditioning], dim=1)
            velocity = self.estimator.velocity(h, mask_in, time_emb[index : index + 1]).to(x.dtype)
            guided = (1.0 + rate) * velocity[:1] - rate * velocity[1:]
            x = x + dt * guided
        return x.float()


class InterpolateRegulator(nn.Module):
    """Stretches token-rate features to the mel frame count, then a small conv stack."""

    def __init__(
        self,
        channels: int,
        sampling_ratios: Sequence[int],
        out_channels: int | None = None,
        groups: int = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in sampling_ratios:
            layers += [nn.Conv1d(channels, channels, 3, 1, 1), nn.GroupNorm(groups, channels), nn.Mish()]
        layers.append(nn.Conv1d(channels, out_channels or channels, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, mel_len: int, input_frame_rate: int) -> torch.Tensor:
        """(1, T_tok, C) -> (1, C_out, mel_len), upstream's ``inference`` without a prompt."""
        x = x.transpose(1, 2)
        if x.shape[2] > 2 * EDGE_TOKENS:
            edge = mel_frames(EDGE_TOKENS, input_frame_rate)
            x = torch.cat(
                [
                    F.interpolate(x[:, :, :EDGE_TOKENS], size=edge, mode="linear"),
                    F.interpolate(x[:, :, EDGE_TOKENS:-EDGE_TOKENS], size=mel_len - 2 * edge, mode="linear"),
                    F.interpolate(x[:, :, -EDGE_TOKENS:], size=edge, mode="linear"),
                ],
                dim=2,
            )
        else:
            x = F.interpolate(x, size=mel_len, mode="linear")
        return self.model(x)


class MaskedDiffWithXvec(nn.Module):
    """CosyVoice v1 flow: token embedding, Conformer encoder, length regulator, CFM decoder."""

    def __init__(
        self,
        encoder: ConformerEncoder,
        length_regulator: InterpolateRegulator,
        decoder: ConditionalCFM,
        input_size: int = 512,
        output_size: int = 80,
        spk_embed_dim: int = 192,
        vocab_size: int = 4096,
        input_frame_rate: int = 50,
        **training_only: object,
    ) -> None:
        super().__init__()
        drop_training_only("MaskedDiffWithXvec", training_only)
        self.output_size = output_size
        self.input_frame_rate = input_frame_rate
        self.input_embedding = nn.Embedding(vocab_size, input_size)
        self.spk_embed_affine_layer = nn.Linear(spk_embed_dim, output_size)
        self.encoder = encoder
        self.encoder_proj = nn.Linear(encoder.output_size(), output_size)
        self.decoder = decoder
        self.length_regulator = length_regulator

    @torch.inference_mode()
    def inference(
        self,
        token: torch.Tensor,
        embedding: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        n_timesteps: int = 10,
    ) -> torch.Tensor:
        """Speech tokens (1, T) and x-vector (1, spk_embed_dim) -> mel (1, output_size, frames).

        ``noise`` (1, output_size, frames) is the sampler's start; without it, it is drawn like
        upstream's ``torch.randn_like(mu)`` (from ``generator``, else torch's global generator).
        """
        mu, spks = self.conditions(token, embedding)
        if noise is None:
            noise = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
        elif noise.shape != mu.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {tuple(mu.shape)}")
        return self.decode(mu, spks, noise, n_timesteps)

    def conditions(self, token: torch.Tensor, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Speech tokens (1, T) and x-vector -> the decoder's conditioning ``mu`` (1, output_size,
        frames) and speaker vector ``spks`` (stream mode, ``streamed.py``, edits ``mu`` between)."""
        if token.shape[0] != 1:
            raise ValueError("the flow decodes one utterance at a time")
        spks = self.spk_embed_affine_layer(F.normalize(embedding, dim=1))
        h = self.input_embedding(torch.clamp(token, min=0))
        h, _ = self.encoder(h, torch.tensor([token.shape[1]], device=token.device))
        h = self.encoder_proj(h)
        frames = mel_frames(token.shape[1], self.input_frame_rate)
        return self.length_regulator(h, frames, self.input_frame_rate), spks

    def decode(
        self, mu: torch.Tensor, spks: torch.Tensor, noise: torch.Tensor, n_timesteps: int = 10
    ) -> torch.Tensor:
        """The conditional flow matching from ``noise`` to the mel, conditioned on ``mu`` and ``spks``."""
        mask = torch.ones(1, 1, mu.shape[2], dtype=mu.dtype, device=mu.device)
        return self.decoder(mu, mask, spks, torch.zeros_like(mu), noise, n_timesteps)
