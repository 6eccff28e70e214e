"""Upstream's speech-token sampling, drawing from the generator exactly as upstream does.

CosyVoice v1 samples with repetition-aware sampling (RAS, from VALL-E 2): nucleus sampling over the
top_p/top_k head of the distribution, falling back to sampling the whole distribution when the
drawn token already appears in the recent window. Upstream (``cosyvoice/utils/common.py``,
``ras_sampling``/``nucleus_sampling``/``random_sampling``) builds the nucleus with a Python loop
that adds the sorted probabilities one at a time into a float32 running total and admits the next
token while the total is below top_p. ``nucleus_size`` does exactly that, one float32 addition at
a time: ``torch.cumsum`` would not do (on CPU it accumulates float32 in double, so its totals
differ from the loop's in the last bit at ~40 % of positions, which changes the number of admitted
tokens whenever a total lands next to top_p). The tensor handed to ``multinomial`` then holds the
same float32 values in the same order as upstream's, so the same seed draws the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SamplingParams:
    # Upstream's defaults: ras_sampling(top_p=0.8, top_k=25, win_size=10, tau_r=0.1).
    top_p: float = 0.8
    top_k: int = 25
    win_size: int = 10
    tau_r: float = 0.1
    # Retries when EOS is drawn before min_len (upstream's sampling_ids max_trials).
    max_trials: int = 100


def nucleus_size(sorted_probs: torch.Tensor, top_p: float, top_k: int) -> int:
    """How many of the descending probabilities upstream's nucleus admits (at least one).

    Upstream's loop: ``cum_prob = 0.0``; while ``cum_prob < top_p`` and fewer than top_k are
    admitted, ``cum_prob += p[i]`` (a float32 tensor from the first addition on, compared with
    top_p as float32).
    """
    limit = np.float32(top_p)
    total = np.float32(0.0)
    count = 0
    for value in sorted_probs[:top_k].float().tolist():
        if count and not total < limit:
            break
        total = np.float32(total + np.float32(value))
        count += 1
    return count


def nucleus_sample(probs: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One token from the top_p/top_k head of ``probs`` (a 1-D softmax)."""
    values, indices = probs.sort(descending=True, stable=True)
    count = nucleus_size(values, params.top_p, params.top_k)
    drawn = values[:count].multinomial(1, replacement=True, generator=generator)
    return int(indices[int(drawn)])


def ras_sample(
    logp: torch.Tensor, decoded: list[int], params: SamplingParams, generator: torch.Generator | None
) -> int:
    """Repetition-aware sampling of one token from log-probabilities ``logp`` (1-D)."""
    probs = logp.softmax(dim=0)
    token = nucleus_sample(probs, params, generator)
    window = decoded[-params.win_size :]
    if window.count(token) >= params.win_size * params.tau_r:
        token = int(probs.multinomial(1, replacement=True, generator=generator))
    return token


def sample_token(
    logp: torch.Tensor,
    decoded: list[int],
    eos: int,
    allow_eos: bool,
    params: SamplingParams,
    generator: torch.Generator | None,
) -> int:
    """Upstream's ``sampling_ids``: redraw while EOS comes out and is not yet allowed."""
    for _ in range(params.max_trials + 1):
        token = ras_sample(logp, decoded, params, generator)
        if allow_eos or token != eos:
            return token
    raise RuntimeError(f"sampling drew EOS {params.max_trials + 1} times before the minimum length")
