"""Request texts: fresh sentences (cache misses), a hot set (cache hits), paragraphs."""

from __future__ import annotations

import random

_VOCABULARY = """
    morning river garden window yellow quiet music letter station mountain silver coffee village
    winter summer bright gentle market evening story travel harbor forest meadow lantern bridge
    candle orange purple simple careful happy little early later rain wind cloud ocean paper
    pencil table chair teacher student doctor engine planet signal journey kitchen library museum
    picture question answer number country city people
"""
WORDS = _VOCABULARY.split()
# Cache hits: the same few sentences over and over (greetings, menu prompts).
HOT_SET = (
    "Welcome back. How can I help you today?",
    "Your order has been shipped and will arrive tomorrow.",
    "Please hold while we connect you to an agent.",
    "Thank you for calling. Goodbye.",
    "The meeting starts in five minutes.",
)


def sentence(words: int, rng: random.Random) -> str:
    """A fresh sentence of about ``words`` words: with 60 words to pick from, repeats are negligible."""
    body = " ".join(rng.choice(WORDS) for _ in range(words))
    return body[0].upper() + body[1:] + "."


def paragraph(words: int, rng: random.Random) -> str:
    parts: list[str] = []
    while words > 0:
        n = min(words, rng.randint(8, 16))
        parts.append(sentence(n, rng))
        words -= n
    return " ".join(parts)
