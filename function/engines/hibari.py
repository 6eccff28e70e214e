"""The default engine: hibari-tts, an 82M-distilled English voice whose default model ships in its wheel.

hibari and onnxruntime are imported in ``load()`` only; the voice catalogue comes from the
package's own registry file, so listing voices costs no model load.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from importlib import metadata, resources
from typing import Any

import numpy as np

from function.document import Phoneme, Segment
from function.engines.base import Engine, EngineLoadError, Voice
from function.engines.kokoro.chunking import fit_phonemes
from function.phonetics import misaki_ipa, model_vocab, unknown_symbols
from function.text import split_sentences

# OpenAI's built-in voices, spread over hibari's voices by gender; only installed voices are used.
_OPENAI_FEMALE = ("alloy", "coral", "nova", "sage", "shimmer", "ballad", "marin")
_OPENAI_MALE = ("ash", "echo", "fable", "onyx", "verse", "cedar")

# hibari reads this many phonemes at once (its own MAX_PHONEMES).
_MAX_PHONEMES = 500
# hibari names numbers up to its largest scale word (decillion): 36 digits. A longer run of digits
# (commas between them included) is an identifier, not a quantity: it is read digit by digit.
_MAX_NUMBER_DIGITS = 36
_LONG_DIGIT_RUN = re.compile(rf"\d(?:,?\d){{{_MAX_NUMBER_DIGITS},}}")


def spell_long_numbers(text: str) -> str:
    """Runs of more than 36 digits as single digits ("1 1 1 …"): hibari cannot name them as a number."""
    return _LONG_DIGIT_RUN.sub(lambda m: " ".join(m[0].replace(",", "")), text)


def fold_digit_signs(text: str) -> str:
    """Superscript and circled digits ("¹", "①") as plain ones: hibari's number reader takes any
    character ``str.isdigit`` accepts and passes it to ``int()``, which refuses them (a 500)."""
    return "".join(unicodedata.normalize("NFKC", c) if c.isdigit() and not c.isdecimal() else c for c in text)


class HibariEngine(Engine):
    name = "hibari"
    sample_rate = 24_000
    speed_range = (0.5, 2.0)
    # Measured ~0.6 ms/char on one core (about 100x real time); padded for a slow, shared vCPU.
    seconds_per_char = 0.005

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads or 1
        registry = resources.files("hibari").joinpath("assets/voices.json").read_text("utf-8")
        self._registry: dict[str, dict] = json.loads(registry)
        self._sessions: dict[str, object] = {}
        self._g2ps: dict[bool, Any] = {}
        self._version = metadata.version("hibari-tts")

    @property
    def model_version(self) -> str:
        return f"hibari-tts=={self._version}"

    def _installed(self, voice_id: str) -> bool:
        from hibari.voices import voice_path  # pure Python, no onnxruntime

        try:
            voice_path(voice_id, download_missing=False)
        except FileNotFoundError:
            return False
        return True

    def voices(self) -> list[Voice]:
        # Voices outside the wheel count only once baked into the image (HIBARI_HOME): the
        # function never downloads at run time.
        return [
            Voice(
                id=voice_id,
                language=info["language"],
                description=f"{info['accent']} English, {info['gender']}",
            )
            for voice_id, info in self._registry.items()
            if self._installed(voice_id)
        ]

    @property
    def openai_voices(self) -> dict[str, dict[str, str]]:
        ids = {v.id: self._registry[v.id]["gender"] for v in self.voices()}
        female = [v for v, g in ids.items() if g == "female"] or list(ids)
        male = [v for v, g in ids.items() if g == "male"] or list(ids)
        table = {name: female[i % len(female)] for i, name in enumerate(_OPENAI_FEMALE)}
        table.update({name: male[i % len(male)] for i, name in enumerate(_OPENAI_MALE)})
        return {"en": table}

    def load(self) -> None:
        try:
            from hibari import Hibari

            for voice in self.voices():
                self._sessions[voice.id] = Hibari(voice=voice.id, threads=self._threads)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineLoadError(f"hibari model failed to load: {exc}") from exc

    def pieces(self, text: str) -> list[str]:
        return split_sentences(spell_long_numbers(fold_digit_signs(text)))

    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        tts = self._sessions[voice]
        return np.asarray(tts(text, speed=speed, seed=_seed(voice, speed, text)), dtype=np.float32)

    # -- pronunciations (SSML <phoneme alphabet="ipa">, lexicons): hibari speaks Kokoro's alphabet --

    def phoneme_alphabets(self, voice: Voice) -> frozenset[str]:
        return frozenset({"ipa"})

    def phoneme_problem(self, phoneme: Phoneme, voice: Voice) -> str | None:
        unknown = unknown_symbols(misaki_ipa(phoneme.ph), model_vocab())
        return f"hibari has no phoneme for {unknown!r} (in {phoneme.ph!r})" if unknown else None

    # <lang xml:lang="en-GB"> (or en-US) picks hibari's British (or American) rules for its words.
    reads_lang_by_phonemes = True

    def segment_phonemes(self, segment: Segment, voice: str, lang: str | None) -> str:
        if segment.phoneme is not None:
            return misaki_ipa(segment.phoneme.ph)
        if not segment.text.strip():
            return " "
        g2p = self._sessions[voice].g2p if lang is None else self._g2p(lang.lower() == "en-gb")  # type: ignore[attr-defined]
        return g2p(" ".join(self.pieces(segment.text)))

    def _g2p(self, british: bool) -> Any:
        """hibari's G2P with British or American rules, built on first use (~0.35 s each)."""
        if british not in self._g2ps:
            from hibari.g2p import G2P

            self._g2ps[british] = G2P(british=british)
        return self._g2ps[british]

    def synthesize_phonemes(self, phonemes: str, voice: str, speed: float) -> np.ndarray:
        tts = self._sessions[voice]
        text = " ".join(phonemes.split())
        audio = [
            tts.from_phonemes(chunk, speed=speed, seed=_seed(voice, speed, chunk))  # type: ignore[attr-defined]
            for chunk in fit_phonemes(text, _MAX_PHONEMES)
        ]
        return np.concatenate(audio).astype(np.float32) if audio else np.zeros(0, np.float32)


def _seed(voice: str, speed: float, text: str) -> int:
    """hibari mixes in noise; a seed derived from the input keeps the output deterministic, which
    content-addressed objects rely on."""
    return int.from_bytes(hashlib.sha256(f"{voice}|{speed}|{text}".encode()).digest()[:8], "little")
