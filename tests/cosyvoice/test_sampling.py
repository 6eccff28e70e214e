"""The nucleus admits exactly the tokens upstream's loop admits, also where a running total lands
next to top_p (where a cumsum, accumulated in double, differs in the last bit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from function.engines.cosyvoice.sampling import SamplingParams, nucleus_sample, nucleus_size


@pytest.fixture(scope="module")
def upstream_nucleus_size():
    from loadtest.upstream_cosyvoice import install_stubs

    install_stubs()
    from cosyvoice.utils.common import nucleus_sampling

    def size(logits: torch.Tensor, top_p: float, top_k: int) -> int:
        seen: list[int] = []
        original = torch.Tensor.multinomial

        def record(self, *args, **kwargs):
            seen.append(self.numel())
            return original(self, *args, **kwargs)

        torch.Tensor.multinomial = record
        try:
            nucleus_sampling(logits, top_p=top_p, top_k=top_k)
        finally:
            torch.Tensor.multinomial = original
        return seen[0]

    return size


def _near_top_p(logits: torch.Tensor, top_p: float) -> bool:
    """A float32 running total of the sorted probabilities lands within one ulp of top_p."""
    limit = np.float32(top_p)
    total = np.float32(0.0)
    for value in logits.softmax(dim=0).sort(descending=True).values[:25].tolist():
        total = np.float32(total + np.float32(value))
        if abs(total - limit) <= np.spacing(limit):
            return True
    return False


def edge_cases(count: int, top_p: float = 0.8) -> list[torch.Tensor]:
    """Logits whose sorted probabilities reach ``top_p`` within one float32 ulp after k tokens."""
    rng = np.random.default_rng(0)
    cases: list[torch.Tensor] = []
    while len(cases) < count:
        k = int(rng.integers(2, 24))
        head = np.sort(rng.random(k) + 0.05)[::-1]
        head = head / head.sum() * top_p
        # The rest of the mass in smaller tokens, so the head stays the top of the sorted order.
        tail_n = int(rng.integers(k, 60))
        tail = rng.uniform(0.5, 1.0, tail_n)
        tail = tail / tail.sum() * (1 - top_p)
        if tail.max() >= head.min():
            continue
        probs = np.concatenate([head, tail])
        probs[k - 1] += int(rng.integers(-2, 3)) * np.spacing(np.float32(top_p))
        logits = torch.from_numpy(np.log(probs)).float()[torch.from_numpy(rng.permutation(len(probs)))]
        if _near_top_p(logits, top_p):
            cases.append(logits)
    return cases


def test_nucleus_size_equals_upstreams_on_edge_cases(upstream_nucleus_size) -> None:
    cases = edge_cases(300)
    differ_cumsum = 0
    for logits in cases:
        values = logits.softmax(dim=0).sort(descending=True, stable=True).values
        expected = upstream_nucleus_size(logits, 0.8, 25)
        assert nucleus_size(values, 0.8, 25) == expected
        # What a cumsum would have admitted: the cases do reach the last-bit differences.
        before = torch.cat([values.new_zeros(1), torch.cumsum(values[:25], dim=0)[:-1]])
        differ_cumsum += int((before < 0.8).sum()) != expected
    assert differ_cumsum > 30


def test_top_k_and_single_token_limits(upstream_nucleus_size) -> None:
    flat = torch.zeros(100)  # uniform: top_p needs 80 tokens, top_k stops at 25
    assert nucleus_size(flat.softmax(0), 0.8, 25) == upstream_nucleus_size(flat, 0.8, 25) == 25
    peaked = torch.tensor([10.0, 0.0, 0.0])  # one token holds more than top_p
    assert nucleus_size(peaked.softmax(0).sort(descending=True).values, 0.8, 25) == 1
    assert upstream_nucleus_size(peaked, 0.8, 25) == 1


def test_same_seed_draws_upstreams_token(upstream_nucleus_size) -> None:
    from cosyvoice.utils.common import nucleus_sampling

    for index, logits in enumerate(edge_cases(40)):
        torch.manual_seed(index)
        expected = int(nucleus_sampling(logits, top_p=0.8, top_k=25))
        torch.manual_seed(index)
        assert nucleus_sample(logits.softmax(dim=0), SamplingParams(), None) == expected
