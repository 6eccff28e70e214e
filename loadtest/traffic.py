"""What the load test sends: each kind of request (a name in the per-request log, a route, a body),
and the scenarios that mix them. The Locust users (``loadtest/locustfile.py``) and the unloaded
calibration that sets the deadlines (``loadtest.goodput``) build their requests from here alike."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadtest.texts import HOT_SET, paragraph, sentence


@dataclass(frozen=True)
class Kind:
    name: str
    path: str
    make: Callable[[random.Random], dict[str, Any]]
    # Bodies to send once before timing it unloaded: the hot set's first (uncached) syntheses.
    prime: tuple[dict[str, Any], ...] = ()


def _synthesize(name: str, make_text: Callable[[random.Random], str], **extra: Any) -> Kind:
    return Kind(name, "/synthesize", lambda rng: {"text": make_text(rng)}, **extra)


def _openai(rng: random.Random) -> dict[str, Any]:
    return {
        "model": "tts-1",
        "input": sentence(10, rng),
        "voice": rng.choice(("alloy", "echo", "nova")),
        "response_format": "wav",
    }


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        # mixed: the default scenario, realistic traffic
        _synthesize("unique-10w", lambda rng: sentence(10, rng)),
        _synthesize(
            "hot-set", lambda rng: rng.choice(HOT_SET), prime=tuple({"text": text} for text in HOT_SET)
        ),
        _synthesize("mixed-3w", lambda rng: sentence(3, rng)),
        _synthesize("mixed-25w", lambda rng: paragraph(25, rng)),
        _synthesize("mixed-80w", lambda rng: paragraph(80, rng)),
        Kind("openai-speech", "/v1/audio/speech", _openai),
        # isolation: short prompts from some users while others ask for long passages
        _synthesize("short-5w", lambda rng: sentence(5, rng)),
        _synthesize("long-150w", lambda rng: paragraph(150, rng)),
    )
}

# Which request kinds each scenario sends; in "isolation" the short ones are the figures that count.
SCENARIOS: dict[str, tuple[str, ...]] = {
    "mixed": ("unique-10w", "hot-set", "mixed-3w", "mixed-25w", "mixed-80w", "openai-speech"),
    "isolation": ("short-5w", "long-150w"),
}
# Isolation rows report short and long requests apart (``traffic`` in the summary).
ISOLATION_TRAFFIC = {"short": ("short-5w",), "long": ("long-150w",)}


def long_users(users: int, share: float) -> int:
    """How many of ``users`` send long texts in the isolation scenario: at least one, and at least
    one user left to send short ones (when there are two or more)."""
    return min(max(1, round(users * share)), max(1, users - 1))
