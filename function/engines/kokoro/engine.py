"""The Kokoro engine: Kokoro-82M v1.0 (int8 ONNX) on onnxruntime, Mandarin and English voices.

Constructing it, listing voices and reading the model version touch only ``manifest.json`` and
package metadata. ``load()`` imports onnxruntime, checks and opens the model, reads the voices and
builds the Mandarin front end (OpenCC, wetext, jieba, pypinyin, misaki); hibari's English G2Ps are built on
first use (see ``frontend.TextFrontEnd``). ``pieces()`` builds the front end alone if it runs first.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from function.document import Phoneme, Segment
from function.engines.base import Engine, EngineLoadError, TimedWord, Voice
from function.engines.kokoro import catalogue
from function.engines.kokoro.chunking import fit_phonemes, fit_text, sentences, stream_parts
from function.engines.kokoro.files import (
    JIEBA_TRIE,
    KNOWN_MODELS,
    STATIC_FILE,
    STATIC_WEIGHT_BITS,
    STYLE_DIM,
    STYLE_ROWS,
    TIMED_FILE,
    Manifest,
    ModelDirError,
    built_model,
    model_source,
    read_voice,
)
from function.engines.kokoro.timing import DURATIONS, fit_to_sound, word_spans
from function.phonetics import misaki_ipa, model_vocab, numbered_pinyin, unknown_symbols

if TYPE_CHECKING:
    from function.engines.kokoro.frontend import TextFrontEnd

# The audio also depends on the text front end's packages and on this package's own rules, so
# they are part of the model version too: bump REVISION whenever normalize.py, pinyin.py,
# frontend.py, chunking.py or the audio handling here would give other audio for the same request,
# and whenever timing.py would give other word marks (stored write-once beside the audio, under its
# key; 3: word boundaries at pauses fitted to the sound).
FRONTEND_PACKAGES = ("misaki", "jieba", "pypinyin", "cn2an", "wetext", "kaldifst", "opencc", "hibari-tts")
REVISION = 3
# Kokoro frames every utterance in silence (~0.3 s before, up to ~1 s after: the durations it gives
# the 0 pads). The service puts its own pause between pieces, so the edges are cut where the audio
# stays below -60 dBFS (Kokoro's are exact zeros fading in), keeping a short margin.
EDGE_SILENCE = 1e-3
EDGE_MARGIN_S = 0.05
# Between a stream's clause parts: Kokoro leaves 0.08-0.27 s under -40 dBFS at a comma inside one
# utterance (zf_xiaobei, zm_yunjian); each trimmed part keeps EDGE_MARGIN_S of its own on both
# sides, so this makes ~0.2 s, where a sentence's pause would sound like a full stop.
CLAUSE_PAUSE_S = 0.1


class KokoroEngine(Engine):
    name: ClassVar[str] = "kokoro"
    sample_rate: ClassVar[int] = 24_000
    # Kokoro scales its predicted durations by 1/speed; outside this range speech degrades.
    speed_range: ClassVar[tuple[float, float]] = (0.5, 2.0)
    # Mandarin is the slowest per character: a 44-character paragraph is ~10 s of speech, made in
    # 3.5 s on one thread of a shared 2 vCPU AMD EPYC (0.08 s/char, loadtest/bench_kokoro.py) and
    # in up to ~5 s while the machine was busy (0.11 s/char); 0.15 leaves room for a slower vCPU.
    seconds_per_char: ClassVar[float] = 0.15

    def __init__(self, model_dir: Path, threads: int | None = None, static: bool | None = None) -> None:
        """``static``: run the statically quantised model (``quantize.py``); None runs it when the
        build made one that this CPU runs correctly (see ``uses_static``)."""
        self.model_dir = Path(model_dir)
        self.threads = threads or 1
        self._static = static
        self._manifest: Manifest | None = None
        self._version: str | None = None
        self._session: Any = None  # onnxruntime.InferenceSession, typed loosely to keep the import lazy
        self._token_input = "tokens"
        self._timed = False  # whether the open model outputs its phonemes' durations (timing.py)
        self._styles: dict[str, np.ndarray] = {}
        self._frontend: TextFrontEnd | None = None
        # Where load() spent its time (seconds per phase): loadtest/bench_kokoro.py reports it.
        self.load_seconds: dict[str, float] = {}

    # -- metadata (cheap) ---------------------------------------------------------------------------

    def _read_manifest(self) -> Manifest:
        if self._manifest is None:
            try:
                self._manifest = Manifest.read(self.model_dir)
            except ModelDirError as exc:
                raise EngineLoadError(str(exc)) from exc
        return self._manifest

    @property
    def model_version(self) -> str:
        if self._version is None:
            manifest = self._read_manifest()
            label = KNOWN_MODELS.get(manifest.model_sha256, "unknown")
            if self.uses_static:
                label = f"{label}-static"
            versions = [f"{p}=={_version_of(p)}" for p in FRONTEND_PACKAGES]
            key = "|".join([manifest.digest, *versions, f"revision-{REVISION}"])
            self._version = f"kokoro-82m-v1.0-{label}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        return self._version

    @property
    def uses_static(self) -> bool:
        """Whether ``load()`` opens the static model. With 7-bit weights (``STATIC_WEIGHT_BITS``) it
        runs on every CPU; an older build's 8-bit one only where the CPU has VNNI, as without it
        onnxruntime's u8 x s8 kernels sum pairs of products in int16, which 8-bit weights saturate
        (that build kept the timed model for those CPUs)."""
        if self._static is None:
            manifest = self._read_manifest()
            runs_anywhere = manifest.static_weight_bits == STATIC_WEIGHT_BITS
            self._static = bool(manifest.static_sha256) and (runs_anywhere or cpu_has_vnni())
        return self._static

    def _voice_ids(self) -> list[str]:
        return catalogue.order(list(self._read_manifest().voices))

    def voices(self) -> list[Voice]:
        return [catalogue.to_voice(v) for v in self._voice_ids()]

    def times_words(self) -> bool:
        """When the model ``load()`` opens has its durations output (``timing.py``): the timed model
        a directory's manifest records, or the 7-bit static model, which the build makes from it."""
        manifest = self._read_manifest()
        return bool(manifest.timed_sha256) or (self.uses_static and bool(manifest.static_weight_bits))

    @property
    def openai_voices(self) -> dict[str, dict[str, str]]:
        return catalogue.openai_table(self._voice_ids())

    # -- model ----------------------------------------------------------------------------------------

    def load(self) -> None:
        if self._session is not None:
            return
        phase = _Phases(self.load_seconds)
        try:
            import onnxruntime as ort

            phase("import_onnxruntime")
            manifest = self._read_manifest()
            if self.uses_static:
                if not manifest.static_sha256:
                    raise ModelDirError(f"kokoro: {self.model_dir} has no static model; rebuild it")
                source: str | bytes = built_model(self.model_dir, STATIC_FILE, manifest.static_sha256)
            elif manifest.timed_sha256:
                source = built_model(self.model_dir, TIMED_FILE, manifest.timed_sha256)
            else:
                source, _ = model_source(self.model_dir, manifest.model_sha256)
            phase("check_model")
            session = ort.InferenceSession(
                source, self._session_options(ort), providers=["CPUExecutionProvider"]
            )
            phase("session")
            # onnxruntime keeps the bytes it was given (only to rebuild the session after a GPU
            # provider fails, which a CPU session never does): 92 MB held for nothing.
            if getattr(session, "_model_bytes", None) is not None:
                session._model_bytes = None
            del source
            inputs = [i.name for i in session.get_inputs()]
            # The kokoro-onnx export names its ids "tokens", onnx-community's "input_ids".
            if len(inputs) != 3 or not {"style", "speed"} <= set(inputs):
                raise ModelDirError(f"kokoro: unexpected model inputs {inputs}")
            token_input = next(n for n in inputs if n not in ("style", "speed"))
            styles = {
                voice: np.frombuffer(read_voice(self.model_dir, voice, manifest.voices[voice]), np.float32)
                .reshape(STYLE_ROWS, STYLE_DIM)
                .copy()
                for voice in self._voice_ids()
            }
            phase("voices")
            self._text_frontend()
            phase("frontend")
        except EngineLoadError:
            raise
        except Exception as exc:  # onnxruntime and the front end raise their own types
            raise EngineLoadError(f"kokoro model failed to load: {exc}") from exc
        self._styles, self._token_input, self._session = styles, token_input, session
        self._timed = DURATIONS in {output.name for output in session.get_outputs()}

    def _session_options(self, ort: Any) -> Any:
        """onnxruntime's defaults (sequential execution, memory arena, full graph optimisation but
        for the static model) with ``threads`` intra-op threads; loadtest/bench_kokoro.py overrides
        this to compare others."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        # One request at a time through one sequential graph: a second (inter-op) pool only idles.
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if self.uses_static:
            # The build saved the static model optimised (quantize.py: the portable, CPU-neutral
            # level); optimising it again cost 0.1-0.14 s of every cold start and ran no faster
            # (loadtest/bench_kokoro.py's opt_all variant).
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return options

    def _text_frontend(self) -> TextFrontEnd:
        if self._frontend is None:
            from function.engines.kokoro.frontend import TextFrontEnd

            try:
                self._frontend = TextFrontEnd(self.model_dir / JIEBA_TRIE)
            except FileNotFoundError as exc:
                raise EngineLoadError(
                    f"kokoro: {exc}; build it with: python -m function.engines.kokoro.assets {self.model_dir}"
                ) from exc
        return self._frontend

    # -- text and audio -------------------------------------------------------------------------------

    def pieces(self, text: str) -> list[str]:
        """Sentences (Chinese punctuation included), numbers written out the Chinese way in Chinese
        text, cut further where their phonemes would not fit the model's 510-token context."""
        frontend = self._text_frontend()
        out: list[str] = []
        for sentence in sentences(text):
            out.extend(fit_text(frontend.normalize(sentence), frontend.count))
        return out

    def phonemes(self, text: str, voice: str) -> str:
        """The phonemes ``voice`` is given for ``text`` (only characters the model has ids for)."""
        frontend = self._text_frontend()
        return frontend.tokens(frontend.phonemes(text, catalogue.language(voice)))

    # -- pronunciations (SSML <phoneme>, lexicons) and <lang> ---------------------------------------

    reads_lang_by_phonemes: ClassVar[bool] = True

    def phoneme_alphabets(self, voice: Voice) -> frozenset[str]:
        # Kokoro speaks one phoneme alphabet for both languages: a Mandarin voice says IPA too.
        return frozenset({"pinyin", "ipa"} if voice.language == "zh-CN" else {"ipa"})

    def phoneme_problem(self, phoneme: Phoneme, voice: Voice) -> str | None:
        try:
            phonemes = self._pronounced(phoneme)
        except ValueError as exc:
            return str(exc)
        unknown = unknown_symbols(phonemes, model_vocab())
        return f"Kokoro has no phoneme for {unknown!r} (in {phoneme.ph!r})" if unknown else None

    def _pronounced(self, phoneme: Phoneme) -> str:
        if phoneme.alphabet == "ipa":
            return misaki_ipa(phoneme.ph)
        from function.engines.kokoro.frontend import pinyin_phonemes

        return pinyin_phonemes(numbered_pinyin(phoneme.ph))

    def segment_phonemes(self, segment: Segment, voice: str, lang: str | None) -> str:
        if segment.phoneme is not None:
            return self._pronounced(segment.phoneme)
        if not segment.text.strip():
            return " "
        return self._text_frontend().phonemes(segment.text, _g2p_language(lang, catalogue.language(voice)))

    def synthesize_phonemes(self, phonemes: str, voice: str, speed: float) -> np.ndarray:
        from function.engines.kokoro.frontend import joined

        self.load()
        return self._said(fit_phonemes(self._text_frontend().tokens(joined([phonemes]))), voice, speed)

    def speak_streamed(self, text: str, voice: str, speed: float, pause_s: float) -> Iterator[np.ndarray]:
        """``speak``, with the first piece said in parts cut at its clause marks (``stream_parts``):
        the first audio is a short clause's instead of a whole sentence's. Each part is trimmed
        like a piece, with ``CLAUSE_PAUSE_S`` between parts."""
        clause_pause = np.zeros(round(CLAUSE_PAUSE_S / speed * self.sample_rate), dtype=np.float32)
        first = True

        def say(piece: str) -> Iterator[np.ndarray]:
            nonlocal first
            parts, first = (stream_parts(piece) if first else [piece]), False
            for index, part in enumerate(parts):
                if index:
                    yield clause_pause
                yield self.synthesize(part, voice, speed)

        return self._spoken(text, pause_s, say)

    def streamed_variant(self, speed: float) -> str | None:
        return "clauses"

    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        if voice not in self._read_manifest().voices or not catalogue.offered(voice):
            raise ValueError(f"unknown kokoro voice {voice!r}")
        self.load()
        chunks = fit_phonemes(self.phonemes(text, voice))
        if self.listener is None or not self._timed:
            return self._said(chunks, voice, speed)
        return self._timed_words(text, voice, speed, chunks)

    def _said(self, chunks: list[str], voice: str, speed: float) -> np.ndarray:
        """The trimmed audio of each chunk of phonemes, joined."""
        audio = [self._infer(chunk, voice, speed)[0] for chunk in chunks]
        return np.concatenate(audio) if audio else np.zeros(0, np.float32)

    def _timed_words(self, text: str, voice: str, speed: float, chunks: list[str]) -> np.ndarray:
        """``synthesize``'s audio, telling the listener when each word of ``text`` is said."""
        assert self.listener is not None and self._frontend is not None
        frontend = self._frontend
        words = [(w, frontend.tokens(p)) for w, p in frontend.words(text, catalogue.language(voice))]
        audio: list[np.ndarray] = []
        timed: list[TimedWord] = []
        done = 0  # samples of the chunks before this one
        for chunk in chunks:
            samples, durations, cut = self._infer(chunk, voice, speed)
            spoken = sum(not c.isspace() for c in chunk)
            mine = _take(words, spoken)
            spans = [
                TimedWord(word.text, max(0, word.start), min(len(samples), word.end))
                for word in word_spans(chunk, durations, mine, cut)
            ]
            for word in fit_to_sound([w for w in spans if w.end > w.start], samples, self.sample_rate):
                timed.append(TimedWord(word.text, done + word.start, done + word.end))
            audio.append(samples)
            done += len(samples)
        self.listener.words(timed)
        return np.concatenate(audio) if audio else np.zeros(0, np.float32)

    def feed(self, tokens: str, voice: str, speed: float) -> dict[str, np.ndarray]:
        """The model's inputs for one chunk of phonemes (after ``load()``)."""
        assert self._frontend is not None
        vocab = self._frontend.vocab
        ids = [vocab[c] for c in tokens]
        # Kokoro's voices hold one style per input length: the row for this many phonemes.
        return {
            self._token_input: np.array([[0, *ids, 0]], dtype=np.int64),
            "style": self._styles[voice][len(ids) - 1 : len(ids)],
            "speed": np.array([speed], dtype=np.float32),
        }

    def _infer(self, tokens: str, voice: str, speed: float) -> tuple[np.ndarray, np.ndarray | None, int]:
        """The trimmed audio of one chunk, its phonemes' frame counts (None from a model without
        them) and how many samples trimming cut from its start."""
        outputs = self._session.run(None, self.feed(tokens, voice, speed))
        audio = np.asarray(outputs[0], dtype=np.float32).reshape(-1)
        start, end = edges(audio, self.sample_rate)
        return audio[start:end], outputs[1] if self._timed else None, start


def _g2p_language(lang: str | None, voice_language: str) -> str:
    """The front end's language for text inside <lang xml:lang>: British rules for en-GB, else
    American for English; Mandarin for Chinese; the voice's own without a <lang>."""
    if lang is None:
        return voice_language
    tag = lang.lower()
    if tag.startswith("zh"):
        return "zh-CN"
    return "en-GB" if tag == "en-gb" else "en-US"


def _take(words: list[tuple[str, str]], phonemes: int) -> list[tuple[str, str]]:
    """The first words of ``words`` (removed from it) that ``phonemes`` non-blank phonemes spell."""
    taken: list[tuple[str, str]] = []
    while words and phonemes > 0:
        phonemes -= sum(not c.isspace() for c in words[0][1])
        taken.append(words.pop(0))
    return taken


def edges(audio: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """Where ``audio``'s sound begins and ends: the silence before its first and after its last
    sound (10 ms windows whose peak stays under ``EDGE_SILENCE``) cut, ``EDGE_MARGIN_S`` kept on
    each side; (0, 0) for silence."""
    window = sample_rate // 100
    peaks = np.abs(audio[: len(audio) // window * window]).reshape(-1, window).max(axis=1)
    loud = np.flatnonzero(peaks >= EDGE_SILENCE)
    if not len(loud):
        return 0, 0
    margin = round(EDGE_MARGIN_S * sample_rate)
    return max(0, int(loud[0]) * window - margin), min(len(audio), (int(loud[-1]) + 1) * window + margin)


class _Phases:
    """Records the seconds since the previous call under each name into ``into``."""

    def __init__(self, into: dict[str, float]) -> None:
        self._into = into
        self._last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self._into[name] = round(now - self._last, 3)
        self._last = now


def cpu_has_vnni() -> bool:
    """AVX512-VNNI or AVX-VNNI in /proc/cpuinfo's flags (False where there is no /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_vnni", "avx_vnni"})
    except OSError:
        pass
    return False


def _version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"  # load() then fails with the import error; the version just says so
