"""WeTextProcessing's text normalisers, as upstream CosyVoice runs them, loaded in ~0.1 s.

Upstream (``CosyVoiceFrontEnd.__init__``) builds ``ZhNormalizer(remove_erhua=False,
full_to_half=False, overwrite_cache=True)``, which recompiles the Chinese grammar on every load
(~6 s, ~840 MiB peak), and ``EnNormalizer()``, the English grammar prebuilt in the wheel. Here the
Chinese grammar is compiled once with upstream's options (``build_grammars``, run by
``convert`` at image build) and both grammars are read as compiled finite-state transducers,
without re-optimising them (the package's loader re-optimises the English one: 0.8 s). The build
also writes each of the four transducers in OpenFst's const format, which reads in one piece
(0.04 s for all four, against 0.11 s parsing the vector files state by state: the load runs
beside the model's and holds the interpreter lock while it reads). The strings are then tagged
and verbalised by the package's own ``Processor`` code, so the output is upstream's.

Not tied to CosyVoice: any engine that reads Chinese or English can use ``WeText.load`` (the
Chinese grammar with upstream's options keeps full-width punctuation and erhua, which is what a
TTS front end wants). Requires the optional ``WeTextProcessing`` package (``pynini``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# File names as WeTextProcessing writes them (``Processor.build_fst``).
ZH_TAGGER = "zh_tn_tagger.fst"
ZH_VERBALIZER = "zh_tn_verbalizer.fst"
EN_TAGGER = "en_tn_tagger.fst"  # in the package, prebuilt
EN_VERBALIZER = "en_tn_verbalizer.fst"
CONST_PREFIX = "const_"  # the same transducer in OpenFst's const format, beside the vector one
GRAMMAR_DIR = "wetext"  # under a model directory
# Upstream's Chinese options (``CosyVoiceFrontEnd.__init__``); the rest are the package defaults.
ZH_OPTIONS = {"remove_erhua": False, "full_to_half": False}


def available() -> bool:
    """WeTextProcessing is installed (looked up, not imported: this is cheap)."""
    from importlib.util import find_spec

    return find_spec("pynini") is not None and find_spec("tn") is not None


def ready(grammar_dir: Path) -> bool:
    """``WeText.load(grammar_dir)`` will find the package and the compiled Chinese grammar."""
    return available() and (grammar_dir / ZH_TAGGER).is_file() and (grammar_dir / ZH_VERBALIZER).is_file()


def build_grammars(out_dir: Path) -> Path:
    """Compile the Chinese grammar with upstream's options into ``out_dir`` (~6 s, once)."""
    from tn.chinese.normalizer import Normalizer

    out_dir.mkdir(parents=True, exist_ok=True)
    Normalizer(cache_dir=str(out_dir), overwrite_cache=True, **ZH_OPTIONS)
    write_const_copies(out_dir)
    return out_dir


def write_const_copies(grammar_dir: Path) -> None:
    """The four transducers (the Chinese ones in ``grammar_dir``, the package's English ones) in
    OpenFst's const format, into ``grammar_dir``, which ``WeText.load`` reads first."""
    import pywrapfst
    from pynini import Fst

    for source in (grammar_dir / ZH_TAGGER, grammar_dir / ZH_VERBALIZER, *_english()):
        target = grammar_dir / f"{CONST_PREFIX}{source.name}"
        partial = target.with_suffix(".partial")
        pywrapfst.convert(Fst.read(str(source)), "const").write(str(partial))
        partial.replace(target)  # a reader never finds half a file


def _english() -> tuple[Path, Path]:
    from importlib.resources import files

    package = Path(str(files("tn")))
    return package / EN_TAGGER, package / EN_VERBALIZER


def _read(path: Path, grammar_dir: Path) -> Any:
    """``path``'s transducer as pynini's mutable FST: from its const copy in ``grammar_dir`` when
    the build wrote one, else parsed from ``path`` itself."""
    import pywrapfst
    from pynini import Fst

    const = grammar_dir / f"{CONST_PREFIX}{path.name}"
    if const.is_file():
        return Fst.from_pywrapfst(pywrapfst.Fst.read(str(const)))
    return Fst.read(str(path))


def _processor(tagger: Any, verbalizer: Any, name: str, ordertype: str) -> Any:
    from tn.processor import Processor

    # Processor.__init__ compiles helper grammars that tag/verbalize never read: skip it.
    processor = object.__new__(Processor)
    processor.name = name
    processor.ordertype = ordertype
    processor.tagger = tagger
    processor.verbalizer = verbalizer
    return processor


@dataclass
class WeText:
    """Upstream's two text normalisers: ``zh(text)`` and ``en(text)``."""

    _zh: Any
    _en: Any

    @classmethod
    def load(cls, grammar_dir: Path) -> WeText | None:
        """The normalisers, or None when the package or the Chinese grammar is missing."""
        if not ready(grammar_dir):
            return None
        zh_tagger, zh_verbalizer, en_tagger, en_verbalizer = (
            _read(path, grammar_dir)
            for path in (grammar_dir / ZH_TAGGER, grammar_dir / ZH_VERBALIZER, *_english())
        )
        zh = _processor(zh_tagger, zh_verbalizer, "zh_normalizer", "tn")
        en = _processor(en_tagger, en_verbalizer, "en_normalizer", "en_tn")
        return cls(zh, en)

    def zh(self, text: str) -> str:
        return self._zh.normalize(text)

    def en(self, text: str) -> str:
        return self._en.normalize(text)


class LazyWeText:
    """Loads ``WeText`` in a background thread (started at model load), waited for on first use."""

    def __init__(self, grammar_dir: Path) -> None:
        self._result: WeText | None = None
        self._thread = threading.Thread(target=self._load, args=(grammar_dir,), daemon=True)
        self._thread.start()

    def _load(self, grammar_dir: Path) -> None:
        try:
            self._result = WeText.load(grammar_dir)
        except Exception:  # a broken grammar file: the rules still read the text
            log.exception("cannot load the WeTextProcessing grammars from %s", grammar_dir)
        if self._result is None:
            log.warning(
                "WeTextProcessing or its grammars (%s) missing: numbers, dates and units are read by "
                "the built-in rules, which agree with upstream less often",
                grammar_dir,
            )

    def get(self) -> WeText | None:
        self._thread.join()
        return self._result
