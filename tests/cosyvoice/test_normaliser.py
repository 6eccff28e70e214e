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
