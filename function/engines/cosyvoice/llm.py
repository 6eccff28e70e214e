"""CosyVoice v1's text-to-speech-token language model (upstream ``cosyvoice.llm.llm.TransformerLM``).

The module tree and parameter names are upstream's, so official ``llm.pt`` checkpoints load with
``strict=True``; the encoders themselves are passed in (built from ``transformer.py``), as upstream
does. Inference is our own:

* Upstream decodes with ``forward_chunk``, which concatenates the key/value cache every step and
  re-projects ``2*t - 1`` relative positions through ``linear_pos`` in every layer, so the cost of
  a token grows with its position. Here keys and values go into a cache preallocated for the whole
  utterance, and the projected relative-position keys depend only on the weights, so they are
  computed once (in blocks, as a matrix product) and reused by every step and every request.
* Relative-position attention (ESPnet's ``rel_selfattn`` with ``rel_pos_espnet`` encodings): the
  score of query ``i`` and key ``j`` is ``(q_i + u)·k_j + (q_i + v)·p_(i-j)``, where ``p_r`` is
  ``linear_pos`` of the sinusoid of distance ``r``. Only ``j <= i`` is ever needed (the LM is
  causal), so only non-negative distances are projected.
* Sampling draws from an explicit generator exactly as upstream draws from the global one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from function.engines.cosyvoice import sinusoids
from function.engines.cosyvoice.options import drop_training_only
from function.engines.cosyvoice.sampling import SamplingParams, sample_token

# Relative-position keys are projected this many distances at a time.
POS_BLOCK = 256


@dataclass
class DecodeState:
    """Per-utterance key/value cache: (layers, heads, capacity, d_k) each, filled up to ``length``."""

    keys: torch.Tensor
    values: torch.Tensor
    length: int = 0


class TransformerLM(nn.Module):
    """Text tokens + speaker embedding -> speech tokens (50 Hz), CosyVoice v1."""

    sos_eos = 0
    task_id = 1

    def __init__(
        self,
        text_encoder_input_size: int,
        llm_input_size: int,
        llm_output_size: int,
        text_token_size: int,
        speech_token_size: int,
        text_encoder: nn.Module,
        llm: nn.Module,
        spk_embed_dim: int = 192,
        **training_only: object,
    ) -> None:
        super().__init__()
        drop_training_only("TransformerLM", training_only)
        self.llm_input_size = llm_input_size
        self.speech_token_size = speech_token_size
        self.text_embedding = nn.Embedding(text_token_size, text_encoder_input_size)
        self.text_encoder = text_encoder
        self.text_encoder_affine_layer = nn.Linear(text_encoder.output_size(), llm_input_size)
        self.llm_embedding = nn.Embedding(2, llm_input_size)
        self.llm = llm
        # One extra output: EOS is token id ``speech_token_size``.
        self.llm_decoder = nn.Linear(llm_output_size, speech_token_size + 1)
        self.speech_embedding = nn.Embedding(speech_token_size, llm_input_size)
        self.spk_embed_affine_layer = nn.Linear(spk_embed_dim, llm_input_size)
        self._pos_keys: list[torch.Tensor] = []
        # Per layer, one layer giving q, k and v side by side (``int8.fuse_qkv``); empty: three.
        self.qkv: list[nn.Module] = []

    # --- the decoder-only transformer with a KV cache -------------------------------------------

    @property
    def eos(self) -> int:
        return self.speech_token_size

    @property
    def dtype(self) -> torch.dtype:
        """The activations' dtype (embeddings are never quantised, so they tell it)."""
        return self.llm_embedding.weight.dtype

    @torch.no_grad()
    def prepare(self) -> None:
        """Project the first block of position keys now, at load, rather than in the first
        request (the same work either way: ~30 ms int8, ~85 ms fp32 at full size, 2 threads)."""
        self._ensure_pos_keys(POS_BLOCK)

    def position_keys(self) -> torch.Tensor:
        """The first block of projected position keys, every layer's stacked: (layers, heads,
        POS_BLOCK, d_k), what ``convert`` stores so that the load need not project them."""
        self.prepare()
        return torch.stack([keys[:, :POS_BLOCK] for keys in self._pos_keys])

    def use_position_keys(self, keys: torch.Tensor) -> None:
        """Take ``position_keys()`` as computed before (by ``convert``, from these weights)."""
        first = self.llm.encoders[0].self_attn
        shape = (len(self.llm.encoders), first.h, POS_BLOCK, first.d_k)
        if tuple(keys.shape) != shape or keys.dtype != self.dtype:
            have = f"{tuple(keys.shape)} {keys.dtype}"
            raise ValueError(f"position keys {have}: the model needs {shape} {self.dtype}")
        self._pos_keys = list(keys.unbind(0))

    def _ensure_pos_keys(self, count: int) -> None:
        """Project relative-position keys for distances up to ``count`` in every layer (cached)."""
        have = self._pos_keys[0].shape[1] if self._pos_keys else 0
        if have >= count:
            return
        want = max(count, have + POS_BLOCK)
        first = self.llm.encoders[0].self_attn
        # ESPnet's encodings of the distances have..want-1, as upstream computes them.
        distances = torch.arange(have, want, dtype=torch.float32)
        pe = sinusoids.positions(distances, first.linear_pos.in_features).to(self.dtype)
        grown = []
        for index, layer in enumerate(self.llm.encoders):
            attn = layer.self_attn
            block = attn.linear_pos(pe).view(-1, attn.h, attn.d_k).transpose(0, 1)
            old = self._pos_keys[index] if self._pos_keys else block[:, :0]
            grown.append(torch.cat([old, block], dim=1).contiguous())
        self._pos_keys = grown

    def _attention(self, index: int, x: torch.Tensor, state: DecodeState) -> torch.Tensor:
        """Causal rel-pos self-attention of ``x`` (n, D) at positions length..length+n-1."""
        attn = self.llm.encoders[index].self_attn
        heads, d_k = attn.h, attn.d_k
        n, start = x.shape[0], state.length
        total = start + n
        if self.qkv:
            q, k, v = self.qkv[index](x).view(n, 3, heads, d_k).unbind(1)
        else:
            q, k, v = (
                layer(x).view(n, heads, d_k) for layer in (attn.linear_q, attn.linear_k, attn.linear_v)
            )
        state.keys[index, :, start:total] = k.transpose(0, 1)
        state.values[index, :, start:total] = v.transpose(0, 1)
        keys = state.keys[index, :, :total]
        values = state.values[index, :, :total]
        q_u = (q + attn.pos_bias_u).transpose(0, 1)
        q_v = (q + attn.pos_bias_v).transpose(0, 1)
        content = torch.matmul(q_u, keys.transpose(1, 2))  # (h, n, total)
        # by_distance[h, i, r] = (q_i + v)·p_r
        by_distance = torch.matmul(q_v, self._pos_keys[index][:, :total].transpose(1, 2))
        if n == 1:
            # One query at position total-1: key j is at distance total-1-j.
            position = by_distance.flip(-1)
            scores = (content + position) / math.sqrt(d_k)
        else:
            query_pos = torch.arange(start, total).unsqueeze(1)
            distance = query_pos - torch.arange(total).unsqueeze(0)  # (n, total)
            future = distance < 0
            index_r = distance.clamp(min=0).expand(heads, n, total)
            position = torch.gather(by_distance, 2, index_r)
            scores = (content + position) / math.sqrt(d_k)
            scores = scores.masked_fill(future, -float("inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.matmul(weights, values).transpose(0, 1).reshape(n, heads * d_k)
        return attn.linear_out(context)

    def _decode(self, inputs: torch.Tensor, state: DecodeState) -> torch.Tensor:
        """Run ``inputs`` (n, D) through the LM, extend the cache; log-probs of the last position."""
        llm = self.llm
        self._ensure_pos_keys(state.length + inputs.shape[0])
        x = llm.embed(inputs)
        for index, layer in enumerate(llm.encoders):
            x = x + self._attention(index, layer.norm1(x), state)
            x = x + layer.feed_forward(layer.norm2(x))
        state.length += inputs.shape[0]
        last = llm.after_norm(x[-1:])
        return self.llm_decoder(last)[0].float().log_softmax(dim=-1)

    def _new_state(self, capacity: int) -> DecodeState:
        first = self.llm.encoders[0].self_attn
        shape = (len(self.llm.encoders), first.h, capacity, first.d_k)
        # torch.empty leaves the pages untouched, so unused capacity costs no resident memory.
        return DecodeState(torch.empty(shape, dtype=self.dtype), torch.empty(shape, dtype=self.dtype))

    # --- the prompt -------------------------------------------------------------------------------

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """Text token ids (1, T) -> text encoder output projected to the LM width (T, D)."""
        embedded = self.text_embedding(text)
        lengths = torch.tensor([text.shape[1]], dtype=torch.int32)
        encoded, _ = self.text_encoder(embedded, lengths)
        return self.text_encoder_affine_layer(encoded)[0]

    def prompt(self, text: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The LM's input sequence (T + 3, D): sos, speaker, encoded text, task id."""
        speaker = self.spk_embed_affine_layer(F.normalize(embedding.to(self.dtype), dim=1))
        sos = self.llm_embedding.weight[self.sos_eos : self.sos_eos + 1]
        task = self.llm_embedding.weight[self.task_id : self.task_id + 1]
        return torch.cat([sos, speaker, self.encode_text(text), task], dim=0)

    def start(
        self, text: torch.Tensor, embedding: torch.Tensor, max_tokens: int
    ) -> tuple[DecodeState, torch.Tensor]:
        """Prefill the cache with the prompt; returns the state and the first token's log-probs."""
        inputs = self.prompt(text, embedding)
        state = self._new_state(inputs.shape[0] + max_tokens)
        return state, self._decode(inputs, state)

    def step(self, state: DecodeState, token: int) -> torch.Tensor:
        """Feed one speech token; log-probs of the next."""
        return self._decode(self.speech_embedding.weight[token : token + 1], state)

    # --- generation -------------------------------------------------------------------------------

    def generate(self, *args: Any, **kwargs: Any) -> list[int]:
        """All the speech tokens ``tokens`` yields for the same arguments, as a list."""
        return list(self.tokens(*args, **kwargs))

    @torch.inference_mode()
    def tokens(
        self,
        text: torch.Tensor,
        embedding: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        sampling: SamplingParams | None = None,
        min_token_text_ratio: float = 2.0,
        max_token_text_ratio: float = 20.0,
        force_tokens: int | None = None,
    ) -> Iterator[int]:
        """Speech tokens for text ids (1, T) and a speaker embedding (1, 192), upstream's loop,
        each yielded as soon as it is sampled (streaming decodes them while the LM goes on).

        ``force_tokens`` makes EOS impossible until exactly that many tokens (benchmarks). Draws
        from ``generator``, or from torch's global generator as upstream does.
        """
        sampling = sampling or SamplingParams()
        text_len = text.shape[1]
        min_len = int(text_len * min_token_text_ratio)
        max_len = int(text_len * max_token_text_ratio)
        if force_tokens is not None:
            min_len = max_len = force_tokens
        state, logp = self.start(text, embedding, max_len)
        out: list[int] = []
        for i in range(max_len):
            if i == 0:
                # Upstream never lets the first token be EOS.
                logp[self.eos] = -float("inf")
            token = sample_token(logp, out, self.eos, i >= min_len, sampling, generator)
            if token == self.eos:
                break
            out.append(token)
            yield token
            if i + 1 < max_len:
                logp = self.step(state, token)
