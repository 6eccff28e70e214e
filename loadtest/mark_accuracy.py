"""How close Kokoro's word marks are to the audio: each mark's start and end against the word
timestamps Whisper gives for the same audio (faster-whisper, ``word_timestamps=True``; tiny.en and
the multilingual base for English, base for Mandarin, as ``loadtest/asr.py`` loads them).

The marks come from the model's own phoneme durations (``function/engines/kokoro/timing.py``), so
what they could get wrong is the mapping (phonemes to words, trimming, chunking), not the timing
of the sound. Whisper's timestamps are themselves estimates (cross-attention alignment, 20 ms
frames; published comparisons with forced alignment put their typical error at tens of ms): the
figures are the distance between two estimates, an upper bound of the marks' own error plus
Whisper's. Only boundaries both sides agree exist are compared: the texts are aligned (English by
normalised words, Mandarin by characters) and a mark's start is compared where Whisper starts a
word at the same character, its end where Whisper ends one there. Whisper's first word of a
clip often starts early (it has no silence model): reported apart, not hidden. Without any
recogniser, each clip's first word start and last word end are also compared with where its
sound begins and ends (``sound_onset`` / ``sound_offset``).

Two Whisper models disagree with each other by more than the 50 ms goal, so Whisper cannot judge
it. An exact reference exists wherever a word boundary touches a pause: there the audio's own
energy says where the sound stops and starts again (``pause_errors``: the energy of a 10 ms window
slid in 1 ms steps, quiet below ``QUIET_DB`` under the clip's level, pauses of at least
``MIN_PAUSE_S``, the clip's leading and trailing silence included). The word before a pause ends
where the sound stops, the word after it starts where the sound starts again: ``pause_end`` and
``pause_start`` compare the marks there (the texts in ``PAUSED`` have commas and full stops inside
one piece, so pauses fall between words, not only at the clip's edges).

    python -m loadtest.mark_accuracy [--json loadtest/results/mark_accuracy.json] [--no-whisper]
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from function.engines.kokoro import KokoroEngine
from function.local import cpu_model
from function.marks import Recorder
from function.subtitles import Cue as Timed  # a text and when it is said
from loadtest import asr

KOKORO_DIR = Path(__file__).resolve().parent.parent / "models" / "kokoro-82m"
RATE = 24_000
ENGLISH = (
    "A small boat drifted slowly across the silent lake at dawn.",
    "Please send the signed contract to our office before Friday afternoon.",
    "The museum will close early tomorrow because of the storm.",
    "She bought three green apples and a loaf of fresh bread.",
    "Our train was delayed, so we walked along the river instead.",
    "Every winter the village holds a market in the old square.",
)
CHINESE = (
    "小船在清晨的湖面上慢慢漂过。",
    "请在星期五下午之前把合同寄到我们办公室。",
    "因为暴风雨，博物馆明天会提前关门。",
    "她买了三个青苹果和一条新鲜的面包。",
    "火车晚点了，所以我们沿着河边走了一会儿。",
    "每年冬天，村里都会在老广场上举办集市。",
)
# Pauses inside one piece (commas, full stops): word boundaries the audio's energy can time.
PAUSED = {
    "en": (
        "When the rain stopped, we walked home. The streets were quiet, and the air was cold.",
        "First, open the box. Then, take out the manual, and read it carefully.",
        "Yes, I remember the house. It was small, white, and close to the sea.",
        "After dinner, she wrote a letter. Later, she posted it at the station.",
    ),
    "zh": (
        "雨停了以后，我们走回家。街上很安静，空气也很冷。",
        "首先，打开盒子。然后，拿出说明书，仔细阅读。",
        "是的，我记得那座房子。它很小，是白色的，离海很近。",
        "晚饭以后，她写了一封信。后来，她在车站把信寄了出去。",
    ),
}
# A pause: every 10 ms window at least this far below the clip's level (its 95th-percentile window).
QUIET_DB = -35.0
MIN_PAUSE_S = 0.1
WINDOW = RATE // 100  # 10 ms
HOP = RATE // 1000  # 1 ms
# (language, voice, texts, Whisper model key for asr.load_model, Whisper language)
CASES = (
    ("en", "af_heart", ENGLISH, "en", "en"),
    ("en", "am_michael", ENGLISH, "en", "en"),
    ("en", "af_heart", ENGLISH, "zh", "en"),  # asr's "zh" model is the multilingual base
    ("zh", "zf_xiaobei", CHINESE, "zh", "zh"),
    ("zh", "zm_yunjian", CHINESE, "zh", "zh"),
)
_WORD = re.compile(r"[^\w']+")


def marked(engine: KokoroEngine, text: str, voice: str) -> tuple[np.ndarray, list[Timed]]:
    """The audio of ``text`` (one piece) and its word marks, as the service makes them."""
    recorder = Recorder()
    with engine.listening(recorder):
        recorder.piece(text)
        audio = engine.synthesize(text, voice, 1.0)
        recorder.audio(len(audio))
    words = [w for w in recorder.pieces[0].words if any(c.isalnum() for c in w.text)]
    return audio, [Timed(w.start / RATE, w.end / RATE, w.text) for w in words]


def heard(audio: np.ndarray, model_key: str, language: str) -> list[Timed]:
    """Whisper's words and their timestamps for ``audio``."""
    model = asr.load_model(model_key)
    clip = soxr.resample(audio, RATE, asr.ASR_SAMPLE_RATE, quality="HQ").astype(np.float32)
    segments, _ = model.transcribe(
        clip,
        language=language,
        beam_size=asr.BEAM_SIZE,
        temperature=0.0,
        condition_on_previous_text=False,
        vad_filter=False,
        word_timestamps=True,
    )
    return [Timed(w.start, w.end, w.word.strip()) for s in segments for w in (s.words or [])]


def _units(words: list[Timed], language: str) -> list[tuple[str, int, int]]:
    """The comparison units (normalised words, or characters) with the index of the word each is in,
    and whether it is that word's first (1) / last (2) unit (bit flags)."""
    units: list[tuple[str, int, int]] = []
    for index, word in enumerate(words):
        if language == "en":
            parts = [p for p in _WORD.split(asr.normalize_english(word.text)) if p]
        else:
            parts = [c for c in asr.normalize_chinese(word.text) if c.strip()]
        for n, part in enumerate(parts):
            units.append((part, index, (n == 0) | ((n == len(parts) - 1) << 1)))
    return units


def boundary_errors(marks: list[Timed], whisper: list[Timed], language: str) -> dict[str, list[float]]:
    """Signed errors (mark - Whisper, seconds) at word starts and ends both sides place at the same unit."""
    ours, theirs = _units(marks, language), _units(whisper, language)
    matcher = difflib.SequenceMatcher(None, [u[0] for u in ours], [u[0] for u in theirs], autojunk=False)
    errors: dict[str, list[float]] = {"start": [], "end": [], "first_start": []}
    for i, j, n in matcher.get_matching_blocks():
        for k in range(n):
            (_, mine, my_flags), (_, other, other_flags) = ours[i + k], theirs[j + k]
            if my_flags & other_flags & 1:
                kind = "first_start" if other == 0 else "start"
                errors[kind].append(marks[mine].start_s - whisper[other].start_s)
            if my_flags & other_flags & 2:
                errors["end"].append(marks[mine].end_s - whisper[other].end_s)
    return errors


def edge_errors(audio: np.ndarray, marks: list[Timed]) -> tuple[float, float]:
    """No recogniser: the first word's start against where the sound begins (the first 5 ms window
    above -40 dBFS), the last word's end against where it ends (signed, seconds)."""
    window = RATE // 200
    peaks = np.abs(audio[: len(audio) // window * window]).reshape(-1, window).max(axis=1)
    loud = np.flatnonzero(peaks >= 0.01)
    onset, offset = loud[0] * window / RATE, (loud[-1] + 1) * window / RATE
    return marks[0].start_s - onset, marks[-1].end_s - offset


def pauses(audio: np.ndarray, quiet_db: float = QUIET_DB) -> list[tuple[float, float]]:
    """Where the audio is silent for at least ``MIN_PAUSE_S`` (start, end in seconds, to 1 ms)."""
    power = np.convolve(audio.astype(np.float64) ** 2, np.ones(WINDOW) / WINDOW, mode="same")[::HOP]
    level = np.percentile(power, 95)
    quiet = np.concatenate(([False], power < level * 10 ** (quiet_db / 10), [False]))
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    runs = zip(edges[::2], edges[1::2], strict=True)
    return [(a * HOP / RATE, b * HOP / RATE) for a, b in runs if (b - a) * HOP / RATE >= MIN_PAUSE_S]


def pause_errors(audio: np.ndarray, marks: list[Timed], quiet_db: float = QUIET_DB) -> dict[str, list[float]]:
    """Signed errors (mark - audio, seconds) where a word boundary touches a pause: the word before
    each pause ends where the sound stops (``pause_end``), the word after starts where it starts
    again (``pause_start``). Each pause is matched to the words around it by time: the last word
    that starts before the pause, and the one after it."""
    errors: dict[str, list[float]] = {"pause_end": [], "pause_start": []}
    for start, end in pauses(audio, quiet_db):
        before = [i for i, word in enumerate(marks) if word.start_s < start]
        after = before[-1] + 1 if before else 0
        if before:
            errors["pause_end"].append(marks[before[-1]].end_s - start)
        if after < len(marks) and marks[after].end_s > end:
            errors["pause_start"].append(marks[after].start_s - end)
    return errors


def summary(errors: list[float]) -> dict[str, Any]:
    if not errors:
        return {"n": 0}
    absolute = sorted(abs(e) * 1000 for e in errors)
    return {
        "n": len(errors),
        "median_ms": round(statistics.median(absolute), 1),
        "p90_ms": round(absolute[min(len(absolute) - 1, int(0.9 * len(absolute)))], 1),
        "max_ms": round(absolute[-1], 1),
        "bias_ms": round(statistics.mean(errors) * 1000, 1),  # mean signed: + marks later
        "within_50ms": round(sum(a <= 50 for a in absolute) / len(absolute), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--no-whisper", action="store_true", help="the pause reference only")
    parser.add_argument("--quiet-db", type=float, default=QUIET_DB, help="a pause's level under the clip's")
    args = parser.parse_args()
    engine = KokoroEngine(KOKORO_DIR)
    engine.load()
    results = []
    for language, voice in (
        ("en", "af_heart"),
        ("en", "am_michael"),
        ("zh", "zf_xiaobei"),
        ("zh", "zm_yunjian"),
    ):
        found: dict[str, list[float]] = {"pause_end": [], "pause_start": []}
        for text in PAUSED[language]:
            audio, marks = marked(engine, text, voice)
            for kind, errors in pause_errors(audio, marks, args.quiet_db).items():
                found[kind] += errors
        row = {"language": language, "voice": voice, "reference": f"pauses ({args.quiet_db:g} dB)"}
        row |= {kind: summary(errors) for kind, errors in found.items()}
        row["all"] = summary(found["pause_end"] + found["pause_start"])
        results.append(row)
        print(json.dumps(row))
    for language, voice, texts, model_key, whisper_language in () if args.no_whisper else CASES:
        errors: dict[str, list[float]] = {"start": [], "end": [], "first_start": []}
        onsets: list[float] = []
        offsets: list[float] = []
        for text in texts:
            audio, marks = marked(engine, text, voice)
            onset, offset = edge_errors(audio, marks)
            onsets.append(onset)
            offsets.append(offset)
            for kind, found in boundary_errors(
                marks, heard(audio, model_key, whisper_language), language
            ).items():
                errors[kind] += found
        whisper = "tiny.en" if model_key == "en" else "base"
        row = {"language": language, "voice": voice, "whisper": whisper}
        row |= {kind: summary(found) for kind, found in errors.items()}
        row["all"] = summary(errors["start"] + errors["end"])
        row["sound_onset"], row["sound_offset"] = summary(onsets), summary(offsets)
        results.append(row)
        print(json.dumps(row))
    load = os.getloadavg()
    context = {
        "cpu": cpu_model(),
        "load_avg": [round(x, 2) for x in load],
        "static_model": engine.uses_static,
    }
    print(json.dumps(context))
    if args.json:
        args.json.write_text(json.dumps({"context": context, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
