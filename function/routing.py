"""Which engine and voice speak a request: the caller's voice, else the first voice for the
caller's language, else the first voice for the language the text is written in (its script).

Text a voice cannot read is refused here, before anything loads: an English voice given Chinese
is a 400 ``unsupported_language``, never a 200 with empty or spelled-out audio; text with nothing
to say (emoji, symbols, punctuation, invisible characters) is a 400 ``no_speakable_text``.
"""

from __future__ import annotations

from function.engines.base import EngineLoadError, base_language
from function.errors import ApiError, bad_field
from function.languages import Detected, detect
from function.registry import Engines, VoiceEntry


def route(
    engines: Engines, text: str, voice: str | None, language: str | None, default_voice: str | None
) -> VoiceEntry:
    detected = detect(text)
    if detected is None:
        raise bad_field(
            "text",
            "has nothing to say: no letters or digits (only emoji, symbols, punctuation, marks or "
            "invisible characters)",
            code="no_speakable_text",
        )
    entries = engines.voices()
    if not entries:
        raise EngineLoadError("; ".join(engines.unavailable().values()) or "no engine is configured")
    if voice is not None:
        entry = find_voice(entries, voice)
        named = f"voice {entry.voice.id!r} speaks"
        if language is not None and not entry.voice.speaks(language):
            raise bad_field("language", f"{named} {entry.voice.language}, not {language!r}")
        if not _reads_all(entry, detected):
            raise _unsupported(engines, entries, detected, f"{named} {_speaks(entry)}")
        return entry
    candidates = [e for e in entries if language is None or e.voice.speaks(language)]
    if not candidates:
        raise bad_field("language", f"no voice speaks {language!r}; languages: {_languages(entries)}")
    readers = [e for e in candidates if _reads_all(e, detected)]
    if not readers:
        who = f"no voice for {language!r} reads it" if language else "no voice here reads it"
        raise _unsupported(engines, entries, detected, who)
    if language is None and detected.primary is not None:
        # A voice of the text's own language before one that only reads it (a Mandarin voice
        # reads English words, but English text goes to an English voice when there is one).
        readers = [e for e in readers if e.voice.speaks(detected.primary)] or readers
    return _preferred(readers, default_voice)


def find_voice(entries: list[VoiceEntry], name: str) -> VoiceEntry:
    for entry in entries:
        if name == entry.voice.id or name.lower() in (a.lower() for a in entry.voice.aliases):
            return entry
    known = ", ".join(n for e in entries for n in (e.voice.id, *e.voice.aliases))
    raise bad_field("voice", f"unknown voice {name!r}; known voices: {known}", code="unknown_voice")


def _preferred(readers: list[VoiceEntry], default_voice: str | None) -> VoiceEntry:
    """The deployment's default voice when it qualifies, else the first engine's own default."""
    for entry in readers:
        if entry.voice.id == default_voice:
            return entry
    first = readers[0].engine
    return next((e for e in readers if e.engine is first and e.voice.id == first.default_voice), readers[0])


def _reads_all(entry: VoiceEntry, detected: Detected) -> bool:
    return all(entry.voice.reads(language) for language in detected.languages)


def _speaks(entry: VoiceEntry) -> str:
    return ", ".join((entry.voice.language, *entry.voice.also_reads))


def _languages(entries: list[VoiceEntry]) -> str:
    return ", ".join(sorted({e.voice.language for e in entries}))


def _unsupported(engines: Engines, entries: list[VoiceEntry], detected: Detected, who: str) -> Exception:
    missing = engines.unavailable()
    if missing:
        # An engine this deployment means to serve is down: a fault of ours, worth a retry.
        return EngineLoadError(f"{who}, and {'; '.join(missing.values())}")
    return ApiError(
        400,
        "unsupported_language",
        f"is in {detected.describe()}; {who}. This deployment speaks: {_languages(entries)}",
        field="text",
        extra={
            "detected": list(detected.languages),
            "supported": sorted({base_language(e.voice.language) for e in entries}),
        },
    )
