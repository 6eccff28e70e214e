"""Honest refusals with the default English engine (hibari): text it cannot speak is a 400 that
says why, over HTTP and through events, and nothing is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FunctionServer, ServerFactory
from tests.refusals import (
    FOREIGN,
    assert_events_refused,
    assert_foreign_refused,
    assert_unspeakable_refused,
    assert_voice_refuses_other_language,
    start_event_server,
)
from tests.test_events import Bucket


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("english-only")


@pytest.fixture(scope="module")
def english_only(start_server: ServerFactory, out_dir: Path) -> FunctionServer:
    return start_server(TTS_ENGINES="hibari", TTS_OUTPUT_URI=str(out_dir))


@pytest.fixture(scope="module")
def refusals_bucket(gcs: str) -> Bucket:
    return Bucket(gcs, "tts-refusals")


@pytest.fixture(scope="module")
def english_events(start_server: ServerFactory, gcs: str, refusals_bucket: Bucket) -> FunctionServer:
    return start_event_server(start_server, gcs, refusals_bucket, TTS_ENGINES="hibari")


def test_text_with_nothing_to_say_is_refused(english_only: FunctionServer) -> None:
    assert_unspeakable_refused(english_only)


def test_languages_without_a_voice_are_refused(english_only: FunctionServer) -> None:
    assert_foreign_refused(english_only, speaks={"en"})
    assert_voice_refuses_other_language(english_only, "heart", FOREIGN["zh"])


def test_nothing_is_stored_for_a_refusal(english_only: FunctionServer, out_dir: Path) -> None:
    assert_unspeakable_refused(english_only)
    assert_foreign_refused(english_only, speaks={"en"})
    assert not [p for p in out_dir.rglob("*") if p.is_file()]


def test_events_record_refusals_and_acknowledge(
    english_events: FunctionServer, refusals_bucket: Bucket
) -> None:
    assert_events_refused(english_events, refusals_bucket, speaks={"en"})
