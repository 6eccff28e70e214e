"""Inference-only ESPnet-style Transformer/Conformer encoders of CosyVoice v1.

Written for this project after reading upstream ``cosyvoice/transformer/{encoder,encoder_layer,
attention,embedding,subsampling,convolution,positionwise_feed_forward}.py`` (commit 46dfe04).
Module and parameter names equal upstream's, so official state dicts load with ``strict=True``.

Only what CosyVoice-300M (v1) uses is implemented: pre-norm layers, ``linear``/``linear_legacy``
input layers, ``rel_pos_espnet`` positions with ``rel_selfattn`` attention, the optional macaron
feed-forward and convolution module of Conformer, and the static chunk mask (the v1 LLM's text
encoder and LM use ``static_chunk_size: 1``, i.e. causal attention; the flow encoder uses none).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from function.engines.cosyvoice import sinusoids
from function.engines.cosyvoice.options import drop_training_only

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}


def rel_shift(scores: torch.Tensor) -> torch.Tensor:
    """(B, H, T, 2T-1) scores by relative index -> (B, H, T, T) scores by key position.

    Query i and key j are at relative position i - j, stored at index T-1-i+j; a strided view
    reads exactly those (upstream gets the same with a pad-and-reshape trick).
    """
    scores = scores.contiguous()
    b, h, t, width = scores.shape
    s_b, s_h = scores.stride(0), scores.stride(1)
    return scores.as_strided((b, h, t, t), (s_b, s_h, width - 1, 1), scores.storage_offset() + t - 1)


class RelPositionMultiHeadedAttention(nn.Module):
    """Transformer-XL style attention with learned biases u, v (upstream ``rel_selfattn``)."""

    def __init__(self, n_head: int, n_feat: int, key_bias: bool = True) -> None:
        super().__init__()
        if n_feat % n_head:
            raise ValueError(f"n_feat {n_feat} is not a multiple of n_head {n_head}")
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat, bias=key_bias)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.zeros(self.h, self.d_k))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1, self.h, self.d_k)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, pos_emb: torch.Tensor) -> torch.Tensor:
        """Self-attention of ``x`` (B, T, D); ``mask`` (B, 1 or T, T) is True where attending."""
        q = self._heads(self.linear_q(x))
        k = self._heads(self.linear_k(x)).transpose(1, 2)
        v = self._heads(self.linear_v(x)).transpose(1, 2)
        p = self._heads(self.linear_pos(pos_emb)).transpose(1, 2)
        q_u = (q + self.pos_bias_u).transpose(1, 2)
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        scale = 1.0 / math.sqrt(self.d_k)
        # The position term (q+v)·p enters as an additive mask, so SDPA computes
        # softmax((q+u)·k / sqrt(d_k) + (q+v)·p / sqrt(d_k)) @ v, upstream's exact formula.
        bias = rel_shift(torch.matmul(q_v, p.transpose(-2, -1))) * scale
        if mask is not None:
            bias = bias.masked_fill(~mask.unsqueeze(1), -float("inf"))
        out = F.scaled_dot_product_attention(q_u, k, v, attn_mask=bias, scale=scale)
        return self.linear_out(out.transpose(1, 2).reshape(x.size(0), -1, self.h * self.d_k))


class PositionwiseFeedForward(nn.Module):
    def __init__(self, idim: int, hidden_units: int, activation: nn.Module) -> None:
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden_units)
        self.activation = activation
        self.w_2 = nn.Linear(hidden_units, idim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.activation(self.w_1(x)))


class ConvolutionModule(nn.Module):
    """Conformer convolution: pointwise + GLU, depthwise, norm, activation, pointwise."""

    def __init__(self, channels: int, kernel_size: int, activation: nn.Module, norm: str) -> None:
        super().__init__()
        if (kernel_size - 1) % 2:
            raise ValueError("the non-causal convolution module needs an odd kernel size")
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, 1)
        self.depthwise_conv = nn.Conv1d(
            channels, channels, kernel_size, padding=(kernel_size - 1) // 2, groups=channels
        )
        if norm == "batch_norm":
            self.use_layer_norm = False
            self.norm: nn.Module = nn.BatchNorm1d(channels)
        elif norm == "layer_norm":
            self.use_layer_norm = True
            self.norm = nn.LayerNorm(channels)
        else:
            raise ValueError(f"unknown cnn_module_norm {norm!r}")
        self.pointwise_conv2 = nn.Conv1d(channels, channels, 1)
        self.activation = activation

    def forward(self, x: torch.Tensor, mask_pad: torch.Tensor | None) -> torch.Tensor:
        x = x.transpose(1, 2)
        if mask_pad is not None:
            x = x.masked_fill(~mask_pad, 0.0)
        x = self.depthwise_conv(F.glu(self.pointwise_conv1(x), dim=1))
        if self.use_layer_norm:
            x = self.activation(self.norm(x.transpose(1, 2))).transpose(1, 2)
        else:
            x = self.activation(self.norm(x))
        x = self.pointwise_conv2(x)
        if mask_pad is not None:
            x = x.masked_fill(~mask_pad, 0.0)
        return x.transpose(1, 2)


class TransformerEncoderLayer(nn.Module):
    """Pre-norm attention + feed-forward block (upstream ``TransformerEncoderLayer``)."""

    def __init__(
        self, size: int, self_attn: RelPositionMultiHeadedAttention, feed_forward: nn.Module
    ) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.norm1 = nn.LayerNorm(size, eps=1e-12)
        self.norm2 = nn.LayerNorm(size, eps=1e-12)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        pos_emb: torch.Tensor,
        mask_pad: torch.Tensor | None,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), mask, pos_emb)
        return x + self.feed_forward(self.norm2(x))


class ConformerEncoderLayer(nn.Module):
    """Pre-norm [macaron FF] + attention + [conv] + FF block (upstream ``ConformerEncoderLayer``)."""

    def __init__(
        self,
        size: int,
        self_attn: RelPositionMultiHeadedAttention,
        feed_forward: nn.Module,
        feed_forward_macaron: nn.Module | None,
        conv_module: ConvolutionModule | None,
    ) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.feed_forward_macaron = feed_forward_macaron
        self.conv_module = conv_module
        self.norm_ff = nn.LayerNorm(size, eps=1e-12)
        self.norm_mha = nn.LayerNorm(size, eps=1e-12)
        if feed_forward_macaron is not None:
            self.norm_ff_macaron = nn.LayerNorm(size, eps=1e-12)
        self.ff_scale = 0.5 if feed_forward_macaron is not None else 1.0
        if conv_module is not None:
            self.norm_conv = nn.LayerNorm(size, eps=1e-12)
            self.norm_final = nn.LayerNorm(size, eps=1e-12)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        pos_emb: torch.Tensor,
        mask_pad: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.feed_forward_macaron is not None:
            x = x + self.ff_scale * self.feed_forward_macaron(self.norm_ff_macaron(x))
        x = x + self.self_attn(self.norm_mha(x), mask, pos_emb)
        if self.conv_module is not None:
            x = x + self.conv_module(self.norm_conv(x), mask_pad)
        x = x + self.ff_scale * self.feed_forward(self.norm_ff(x))
        if self.conv_module is not None:
            x = self.norm_final(x)
        return x


class InputLayer(nn.Module):
    """Upstream ``LinearNoSubsampling`` / ``LegacyLinearNoSubsampling`` (legacy adds a ReLU)."""

    def __init__(self, idim: int, odim: int, legacy: bool) -> None:
        super().__init__()
        # Indices match upstream's Sequential (Linear, LayerNorm, Dropout[, ReLU]).
        layers: list[nn.Module] = [nn.Linear(idim, odim), nn.LayerNorm(odim, eps=1e-5), nn.Identity()]
        if legacy:
            layers.append(nn.ReLU())
        self.out = nn.Sequential(*layers)
        self.xscale = math.sqrt(odim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x) * self.xscale


# Builds one encoder layer: (width, its attention, a feed-forward factory, the activation).
LayerFactory = Callable[[int, RelPositionMultiHeadedAttention, Callable[[], nn.Module], nn.Module], nn.Module]


class _Encoder(nn.Module):
    """Shared body: input layer, rel-pos sinusoids, masks, layers, final norm.

    The options are upstream's, with its defaults, so an option a config leaves out means the same
    here; the ones this runtime does not implement (e.g. the default ``conv2d``) raise. The two
    encoders differ in two defaults and in their layer (``layer``).
    """

    def __init__(
        self,
        input_size: int,
        layer: LayerFactory,
        *,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        input_layer: str = "conv2d",
        pos_enc_layer_type: str,
        normalize_before: bool = True,
        static_chunk_size: int = 0,
        activation_type: str,
        key_bias: bool = True,
        **training_only: object,
    ) -> None:
        super().__init__()
        drop_training_only(type(self).__name__, training_only)
        if input_layer not in ("linear", "linear_legacy"):
            raise ValueError(f"unsupported input_layer {input_layer!r}")
        if pos_enc_layer_type != "rel_pos_espnet":
            raise ValueError(f"unsupported pos_enc_layer_type {pos_enc_layer_type!r}")
        if not normalize_before:
            raise ValueError("only pre-norm layers (normalize_before: True) are implemented")
        self._output_size = output_size
        self.static_chunk_size = static_chunk_size
        self.embed = InputLayer(input_size, output_size, legacy=input_layer == "linear_legacy")
        self.after_norm = nn.LayerNorm(output_size, eps=1e-5)
        activation = ACTIVATIONS[activation_type]()

        def feed_forward() -> nn.Module:
            return PositionwiseFeedForward(output_size, linear_units, activation)

        self.encoders = nn.ModuleList(
            layer(
                output_size,
                RelPositionMultiHeadedAttention(attention_heads, output_size, key_bias),
                feed_forward,
                activation,
            )
            for _ in range(num_blocks)
        )

    def output_size(self) -> int:
        return self._output_size

    def attention_mask(self, pad_mask: torch.Tensor) -> torch.Tensor | None:
        """Upstream's ``add_optional_chunk_mask`` at inference; None when nothing is masked."""
        t = pad_mask.size(-1)
        if self.static_chunk_size > 0:
            pos = torch.arange(t, device=pad_mask.device)
            chunk_end = torch.div(pos, self.static_chunk_size, rounding_mode="trunc") + 1
            chunk = pos.unsqueeze(0) < (chunk_end * self.static_chunk_size).unsqueeze(1)
            return pad_mask & chunk.unsqueeze(0)
        return None if bool(pad_mask.all()) else pad_mask

    def forward(self, xs: torch.Tensor, xs_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``xs`` (B, T, input_size), lengths (B,) -> output (B, T, D), mask (B, 1, T) True=valid."""
        t = xs.size(1)
        masks = (torch.arange(t, device=xs.device).unsqueeze(0) < xs_lens.unsqueeze(1)).unsqueeze(1)
        x = self.embed(xs)
        pos_emb = sinusoids.relative_positions(t, self._output_size).to(dtype=x.dtype, device=x.device)
        att_mask = self.attention_mask(masks)
        mask_pad = None if bool(masks.all()) else masks
        for layer in self.encoders:
            x = layer(x, att_mask, pos_emb, mask_pad)
        return self.after_norm(x), masks


class ConformerEncoder(_Encoder):
    """Upstream ``ConformerEncoder`` (v1: the flow's encoder and the LLM's text encoder)."""

    def __init__(
        self,
        input_size: int,
        *,
        pos_enc_layer_type: str = "rel_pos",
        activation_type: str = "swish",
        macaron_style: bool = True,
        use_cnn_module: bool = True,
        cnn_module_kernel: int = 15,
        cnn_module_norm: str = "batch_norm",
        **options: Any,
    ) -> None:
        def layer(
            size: int,
            attention: RelPositionMultiHeadedAttention,
            feed_forward: Callable[[], nn.Module],
            activation: nn.Module,
        ) -> nn.Module:
            return ConformerEncoderLayer(
                size,
                attention,
                feed_forward(),
                feed_forward() if macaron_style else None,
                ConvolutionModule(size, cnn_module_kernel, activation, cnn_module_norm)
                if use_cnn_module
                else None,
            )

        super().__init__(
            input_size,
            layer,
            pos_enc_layer_type=pos_enc_layer_type,
            activation_type=activation_type,
            **options,
        )


class TransformerEncoder(_Encoder):
    """Upstream ``TransformerEncoder`` (v1: the LLM's decoder-only LM body)."""

    def __init__(
        self,
        input_size: int,
        *,
        pos_enc_layer_type: str = "abs_pos",
        activation_type: str = "relu",
        **options: Any,
    ) -> None:
        super().__init__(
            input_size,
            lambda size, attention, feed_forward, _: TransformerEncoderLayer(size, attention, feed_forward()),
            pos_enc_layer_type=pos_enc_layer_type,
            activation_type=activation_type,
            **options,
        )
