"""The text the model hears: the lite front end against upstream's ``text_normalize`` with
WeTextProcessing (the oracle) on a broad set of Chinese and English texts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from function.engines.cosyvoice import CosyVoiceEngine, wetext
from function.engines.cosyvoice.frontend import normalize
from function.engines.cosyvoice.tokenizer import TextTokenizer
from loadtest.upstream_cosyvoice.random_model import whisper_vocab
from tests.cosyvoice.normaliser_cases import CASES
from tests.cosyvoice.wetext_oracle import upstream_frontend

pytestmark = pytest.mark.skipif(not wetext.available(), reason="WeTextProcessing is not installed")

# Pieces equal to upstream's with the built-in rules alone (no WeTextProcessing): a floor, so a
# change to the rules that reads more texts differently from upstream fails here.
RULES_AGREE_AT_LEAST = 68


@pytest.fixture(scope="module")
def grammar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wetext")


@pytest.fixture(scope="module")
def oracle_pieces(grammar_dir: Path) -> list[list[str]]:
    # Upstream's frontend compiles the Chinese grammar into grammar_dir, with upstream's options.
    front = upstream_frontend(grammar_dir)
    return [front.text_normalize(text, split=True) for text in CASES]


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    return TextTokenizer(whisper_vocab())


def test_pieces_equal_upstreams_with_wetext(oracle_pieces, grammar_dir: Path, tokenizer) -> None:
    normalisers = wetext.WeText.load(grammar_dir)
    assert normalisers is not None
    mine = [normalize(text, tokenizer.encode, normalisers) for text in CASES]
    differ = [(t, up, me) for t, up, me in zip(CASES, oracle_pieces, mine, strict=True) if up != me]
    assert not differ, f"{len(CASES) - len(differ)}/{len(CASES)} equal; first: {differ[:3]}"


def test_the_const_copies_are_what_loads_and_normalise_as_upstream(
    oracle_pieces, grammar_dir: Path, tokenizer, tmp_path: Path
) -> None:
    fast = tmp_path / "wetext"
    shutil.copytree(grammar_dir, fast)
    wetext.write_const_copies(fast)
    for name in (wetext.ZH_TAGGER, wetext.ZH_VERBALIZER, wetext.EN_TAGGER, wetext.EN_VERBALIZER):
        assert (fast / f"{wetext.CONST_PREFIX}{name}").stat().st_size > 0
    for name in (wetext.ZH_TAGGER, wetext.ZH_VERBALIZER):  # only the const copies can be read now
        (fast / name).write_bytes(b"not an fst")
    normalisers = wetext.WeText.load(fast)
    assert normalisers is not None
    mine = [normalize(text, tokenizer.encode, normalisers) for text in CASES]
    assert mine == oracle_pieces


def test_rules_alone_agree_at_least_as_before(oracle_pieces, tokenizer) -> None:
    mine = [normalize(text, tokenizer.encode) for text in CASES]
    agree = sum(up == me for up, me in zip(oracle_pieces, mine, strict=True))
    assert agree >= RULES_AGREE_AT_LEAST, f"{agree}/{len(CASES)}"


def test_engine_uses_the_grammar_in_its_model_dir(
    oracle_pieces, grammar_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    rules_version = CosyVoiceEngine(model_dir).model_version
    shutil.copytree(grammar_dir, model_dir / wetext.GRAMMAR_DIR)
    engine = CosyVoiceEngine(model_dir, threads=1)
    # Other text, other audio: the cache must not serve the rules' audio for it.
    assert engine.model_version == f"{rules_version}-wetext"
    for index in (1, 3, 6, len(CASES) - 8):
        assert engine.pieces(CASES[index]) == oracle_pieces[index]


# Texts the service's own normalisation (NFC, blanks folded, lines split) would change before
# CosyVoice's front end saw them: served, they must reach it as sent, as upstream's do.
RAW_PROBES = [
    "今天\u3000天气很好，\u3000我们去公园。",
    "第一行\r\n第二行\r\n",
    "Cafe\u0301 and nai\u0308ve, re\u0301sume\u0301.",
    "Hello,    world.   Two   spaces.",
    "句子一。\n\n\n句子二。",
]


def test_served_text_reaches_cosyvoice_as_sent(
    grammar_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from function import pipeline
    from function.config import Settings
    from function.registry import Engines
    from function.schema import SynthesizeRequest

    front = upstream_frontend(grammar_dir)  # compiles the grammar into grammar_dir
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    shutil.copytree(grammar_dir, model_dir / wetext.GRAMMAR_DIR)
    settings = Settings(engines=("cosyvoice",), model_dir=model_dir)
    engines = Engines(settings)
    for text in RAW_PROBES:
        request = SynthesizeRequest(text=text)  # the schema strips the ends, nothing else
        plan = pipeline.plan(request, engines, settings, max_chars=1000, timeout_s=3600)
        assert plan.text == request.text
        assert plan.engine.pieces(plan.text) == front.text_normalize(text, split=True), repr(text)
    # Texts the engine hears differently are different audio: they never share a cached object.
    keys = {
        pipeline.plan(SynthesizeRequest(text=t), engines, settings, max_chars=1000, timeout_s=3600).audio_key
        for t in ("Hello,    world.", "Hello, world.")
    }
    assert len(keys) == 2
