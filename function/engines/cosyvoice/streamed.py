"""Upstream's stream-mode token2wav for CosyVoice v1: speech tokens -> audio a hop at a time.

Upstream's ``CosyVoiceModel.tts(stream=True)`` (cosyvoice/cli/model.py) decodes the LLM's tokens
while they come: every time ``token_hop_len + token_overlap_len`` (100 + 20 at 50 Hz) tokens are
waiting it runs ``token2wav(finalize=False)`` on them and keeps the last 20 for the next hop; when
the LLM is done, ``token2wav(finalize=True)`` takes the rest. Its hop stays at
``token_min_hop_len`` (``stream_scale_factor`` is 1). Between hops it carries three caches:

* the flow's: the sampler's starting noise and the conditioning ``mu`` of the last 34 mel frames
  (``ConditionalCFM.forward`` keeps 34 whatever the token rate: the 20 overlap tokens at 50 Hz),
  which replace the first 34 frames of the next hop's;
* the mel overlap: those 34 frames of mel are held back and cross-faded (a Hamming window) into
  the next hop's first 34;
* HiFT's: the last 20 mel frames, their excitation source (20 * 256 samples) and speech; the next
  hop's mel starts with those frames, its source with that source, and its first 5120 samples
  are cross-faded with the held-back speech.

Upstream runs the LLM in a thread and polls it; here the caller hands a token iterator (the LLM
generating) and the hops are decoded synchronously as soon as enough tokens are there. Upstream's
chunks depend only on token counts, so they are the same. Random draws (flow noise, HiFT's
source) come from an explicit generator, in upstream's order and shapes. Upstream does not
change speed in stream mode, and neither does this.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from function.engines.cosyvoice.flow import HOP, SAMPLE_RATE

# Upstream's CosyVoiceModel constants.
TOKEN_OVERLAP = 20
FLOW_CACHE = 34  # mel frames of noise and mu the flow carries into the next hop (upstream's constant)
MEL_CACHE = 20  # mel frames HiFT re-reads at the start of the next hop
SOURCE_CACHE = MEL_CACHE * HOP  # samples of excitation (and speech) carried with them


def fade_in_out(fade_in: torch.Tensor, fade_out: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Upstream's ``fade_in_out``: the first half-window of ``fade_in`` cross-faded with the last
    of ``fade_out``. The window is float64 (numpy's), so the sum is float64, stored as float32."""
    half = window.shape[0] // 2
    out = fade_in.clone()
    out[..., :half] = fade_in[..., :half] * window[:half] + fade_out[..., -half:] * window[half:]
    return out


@dataclass
class HiftCache:
    mel: torch.Tensor  # (1, 80, MEL_CACHE)
    source: torch.Tensor  # (1, 1, SOURCE_CACHE)
    speech: torch.Tensor  # (1, SOURCE_CACHE)


class StreamedToken2Wav:
    """One utterance's stream-mode decoding: flow and HiFT state carried from hop to hop."""

    def __init__(
        self, flow: nn.Module, hift: nn.Module, speaker: torch.Tensor, generator: torch.Generator
    ) -> None:
        self.flow = flow
        self.hift = hift
        self.speaker = speaker
        self.generator = generator
        self.rate = int(flow.input_frame_rate)
        self.hop = 2 * self.rate  # token_min_hop_len
        self.mel_overlap = int(TOKEN_OVERLAP / self.rate * SAMPLE_RATE / HOP)
        self.mel_window = torch.from_numpy(np.hamming(2 * self.mel_overlap))
        self.speech_window = torch.from_numpy(np.hamming(2 * SOURCE_CACHE))
        self.flow_cache: tuple[torch.Tensor, torch.Tensor] | None = None  # (noise, mu)
        self.held_mel: torch.Tensor | None = None
        self.hift_cache: HiftCache | None = None

    def wave(self, tokens: Iterable[int]) -> Iterator[torch.Tensor]:
        """Audio (samples,) per hop as ``tokens`` come, then the rest; nothing for no tokens."""
        window = self.hop + TOKEN_OVERLAP
        pending: list[int] = []
        for token in tokens:
            pending.append(token)
            if len(pending) == window:
                yield self.chunk(pending, finalize=False)
                pending = pending[self.hop :]
        if pending:
            yield self.chunk(pending, finalize=True)

    @torch.inference_mode()
    def chunk(self, tokens: list[int], finalize: bool) -> torch.Tensor:
        """Upstream's ``token2wav`` at speed 1 with this utterance's caches: samples (n,)."""
        mel = self._mel(tokens)
        if self.held_mel is not None:
            mel = fade_in_out(mel, self.held_mel, self.mel_window)
        cache = self.hift_cache
        if cache is not None:
            mel = torch.cat([cache.mel, mel], dim=2)
        if not finalize:
            self.held_mel = mel[:, :, -self.mel_overlap :]
            mel = mel[:, :, : -self.mel_overlap]
        speech, source = self._vocode(mel, cache.source if cache is not None else None)
        if cache is not None:
            speech = fade_in_out(speech, cache.speech, self.speech_window)
        if not finalize:
            self.hift_cache = HiftCache(
                mel[:, :, -MEL_CACHE:], source[:, :, -SOURCE_CACHE:], speech[:, -SOURCE_CACHE:]
            )
            speech = speech[:, :-SOURCE_CACHE]
        return speech[0]

    def _mel(self, tokens: list[int]) -> torch.Tensor:
        """Upstream's ``MaskedDiffWithXvec.inference`` with its ``flow_cache`` (no prompt)."""
        mu, spks = self.flow.conditions(torch.tensor([tokens]), self.speaker)
        noise = torch.randn(mu.shape, dtype=mu.dtype, generator=self.generator)
        if self.flow_cache is not None:
            # The overlap's frames start from the previous hop's noise and conditioning.
            cached_noise, cached_mu = self.flow_cache
            noise[:, :, : cached_noise.shape[2]] = cached_noise
            mu[:, :, : cached_mu.shape[2]] = cached_mu
        # Upstream keeps the last 34 frames for the next hop, hard-coded: the mel overlap only at 50 Hz.
        self.flow_cache = (noise[:, :, -FLOW_CACHE:].clone(), mu[:, :, -FLOW_CACHE:].clone())
        return self.flow.decode(mu, spks, noise)

    def _vocode(
        self, mel: torch.Tensor, cached_source: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Upstream's ``HiFTGenerator.inference`` with ``cache_source``: (speech, source)."""
        source = self.hift.source(mel, self.generator)
        if cached_source is not None:
            # The excitation continues the previous hop's instead of starting anew (no glitch).
            source[:, :, : cached_source.shape[2]] = cached_source
        return self.hift.decode(mel, source), source
