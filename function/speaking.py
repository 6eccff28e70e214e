"""A document checked against the engine and voice that will speak it (``Engine.prepared``).

Every element is honoured or refused here, at plan time, with a 400 ``unsupported_ssml`` naming
the engine, the element and where it is: never a 200 with an element ignored. ``<say-as>`` is
written out for the voice's language (``function.sayas``); a lexicon entry in an alphabet the
voice does not take is left as the text it covers (the lexicon is for other voices).
"""

from __future__ import annotations

from dataclasses import replace

from function.document import Document, Segment, Utterance
from function.engines.base import Engine, Voice, base_language
from function.errors import ApiError
from function.sayas import read_out


def prepare(engine: Engine, document: Document, voice: Voice, speed: float) -> Document:
    low, high = engine.speed_range
    source = document.source

    def checked(utterance: Utterance) -> Utterance:
        if utterance.rate != 1.0 and not low <= speed * utterance.rate <= high:
            raise refusal(
                engine,
                "prosody",
                utterance.start,
                f"rate {utterance.rate:g} at speed {speed:g} is {speed * utterance.rate:g}, outside "
                f"{engine.name}'s {low:g}-{high:g}",
                source,
            )
        if utterance.lang is not None and not voice.reads(base_language(utterance.lang)):
            raise refusal(
                engine,
                "lang",
                utterance.start,
                f"voice {voice.id!r} does not read {utterance.lang!r}",
                source,
            )
        language = base_language(utterance.lang or voice.language)
        segments = tuple(segment_for(engine, voice, s, language, source) for s in utterance.segments)
        return replace(utterance, segments=segments)

    return document.with_utterances(checked)


def segment_for(engine: Engine, voice: Voice, segment: Segment, language: str, source: str) -> Segment:
    if segment.say_as is not None:
        try:
            text = read_out(segment.text, segment.say_as, segment.say_as_format, language)
        except ValueError as exc:
            raise refusal(engine, "say-as", segment.start, str(exc), source) from None
        return replace(segment, text=text, say_as=None, say_as_format=None)
    phoneme = segment.phoneme
    if phoneme is None:
        return segment
    problem = None
    if phoneme.alphabet not in engine.phoneme_alphabets(voice):
        taken = ", ".join(sorted(engine.phoneme_alphabets(voice))) or "none: it reads characters itself"
        problem = f"voice {voice.id!r} does not take alphabet {phoneme.alphabet!r} (it takes {taken})"
    else:
        problem = engine.phoneme_problem(phoneme, voice)
    if problem is None:
        return segment
    if segment.source.startswith("lexicon:"):
        return replace(segment, phoneme=None)
    raise refusal(engine, "phoneme", segment.start, problem, source)


def refusal(engine: Engine, element: str, offset: int, problem: str, field: str) -> ApiError:
    return ApiError(
        400,
        "unsupported_ssml",
        f"engine {engine.name} cannot honour <{element}> at offset {offset}: {problem}",
        field=field,
        extra={"engine": engine.name, "element": element, "offset": offset},
    )
