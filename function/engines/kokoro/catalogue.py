"""Kokoro's voices: which ones this engine offers, in what order, and OpenAI's names for them.

A Kokoro voice id says its language and gender in its first two letters (``zf_xiaobei``: Mandarin,
female). Only languages whose text front end runs here are offered (see the package docstring).
"""

from __future__ import annotations

from function.engines.base import Voice

# Offered language prefixes, in the order voices are listed: Mandarin first (the reason to deploy
# this engine; its first voice is the engine's default), then American and British English.
LANGUAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # prefix: (BCP-47 tag, description, other languages read inside this one)
    "z": ("zh-CN", "Mandarin Chinese", ("en",)),
    "a": ("en-US", "American English", ()),
    "b": ("en-GB", "British English", ()),
}
GENDERS = {"f": "female", "m": "male"}
# Listed first within their language: the voices Kokoro's own grading rates best.
PREFERRED = ("af_heart", "af_bella", "bf_emma", "bm_george")
# Offered by name only: never a default, never behind an OpenAI name. zf_xiaoni measured a
# character error rate of 0.33-0.5 through whisper-base where the other Mandarin voices give 0-0.2
# (docs/kokoro.md).
BY_NAME_ONLY = frozenset({"zf_xiaoni"})

OPENAI_NAMES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova",
    "onyx", "sage", "shimmer", "verse", "marin", "cedar",
)  # fmt: skip
OPENAI_FEMALE = frozenset({"alloy", "coral", "nova", "sage", "shimmer", "marin"})
# Kokoro has voices named after some of OpenAI's (af_alloy, af_nova, am_echo, am_onyx, bm_fable: OpenAI's
# fable is British too); the rest go to good voices of the right gender.
OPENAI_ENGLISH = {
    "alloy": "af_alloy", "ash": "am_fenrir", "ballad": "bm_george", "coral": "af_heart", "echo": "am_echo",
    "fable": "bm_fable", "nova": "af_nova", "onyx": "am_onyx", "sage": "af_sarah", "shimmer": "af_bella",
    "verse": "am_michael", "marin": "af_kore", "cedar": "am_puck",
}  # fmt: skip


def offered(voice_id: str) -> bool:
    """True for the voices of a language this engine can phonemize (e.g. not ``jf_alpha``)."""
    return len(voice_id) > 3 and voice_id[0] in LANGUAGES and voice_id[1] in GENDERS and voice_id[2] == "_"


def gender(voice_id: str) -> str:
    return GENDERS[voice_id[1]]


def language(voice_id: str) -> str:
    return LANGUAGES[voice_id[0]][0]


def order(voice_ids: list[str]) -> list[str]:
    """Offered ids by language (``LANGUAGES`` order), preferred voices first, then by name."""
    prefixes = list(LANGUAGES)
    return sorted(
        (v for v in voice_ids if offered(v)),
        key=lambda v: (
            prefixes.index(v[0]),
            v not in PREFERRED,
            PREFERRED.index(v) if v in PREFERRED else 0,
            v,
        ),
    )


def to_voice(voice_id: str) -> Voice:
    tag, name, also_reads = LANGUAGES[voice_id[0]]
    speaker = voice_id[3:].replace("_", " ").title()
    return Voice(
        id=voice_id,
        language=tag,
        description=f"{name}, {gender(voice_id)} ({speaker})",
        also_reads=also_reads,
    )


def openai_table(voice_ids: list[str]) -> dict[str, dict[str, str]]:
    """OpenAI's 13 names onto installed voices, per base language (``{"en": {...}, "zh": {...}}``).

    English uses ``OPENAI_ENGLISH`` where that voice is installed; every other name (and all of
    Mandarin's) goes round-robin over the language's voices of the name's gender.
    """
    table: dict[str, dict[str, str]] = {}
    for prefixes, base in (("ab", "en"), ("z", "zh")):
        ids = [v for v in order(voice_ids) if v[0] in prefixes and v not in BY_NAME_ONLY]
        if not ids:
            continue
        by_gender = {g: [v for v in ids if gender(v) == g] or ids for g in GENDERS.values()}
        names: dict[str, str] = {}
        used = {"female": 0, "male": 0}
        for name in OPENAI_NAMES:
            wanted = OPENAI_ENGLISH.get(name) if base == "en" else None
            if wanted in ids:
                names[name] = wanted
                continue
            g = "female" if name in OPENAI_FEMALE else "male"
            names[name] = by_gender[g][used[g] % len(by_gender[g])]
            used[g] += 1
        table[base] = names
    return table
