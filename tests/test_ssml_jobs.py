"""SSML and lexicons on jobs and events, end to end: ``POST /jobs`` on a real HTTP instance, parts
pushed as Pub/Sub push bodies to a real event instance, Pub/Sub CloudEvents, a local-folder store,
hibari. The document is cut between utterances; the checks are on the assembled audio (a break's
silence at its marks' time), the marks' offsets into the caller's markup, and each part's audio
against the same sentence spoken alone by ``/synthesize`` (its content address: the same speech)."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import requests
import webvtt

from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory
from tests.jobs_fleet import wait_for_job, wait_until
from tests.test_events import acknowledged, eventarc_pubsub
from tests.test_marks import local

RATE = 24_000
PAUSE = round(0.2 * RATE)  # the sentence pause's default, between parts without a break
SILENCE_PEAK = 1e-3
# Each sentence speaks more than half a part (TTS_JOB_PART_CHARS=100): one part each.
SENTENCES = [
    "The river number one is quiet tonight under a copper moon.",
    "The meadow number two is silver where the lanterns glow.",
    "Then the harbor number three is calm before the long storm.",
    'Say <phoneme alphabet="ipa" ph="təˈmɑːtoʊ">tomato</phoneme> the way the old harbor keepers do.',
]
SSML = (
    f"<speak>\n  <p><s>{SENTENCES[0]}</s> <s>{SENTENCES[1]}</s></p>\n"
    f'  <break time="1500ms"/>\n  <p><prosody rate="90%"><s>{SENTENCES[2]}</s>\n'
    f"  <s>{SENTENCES[3]}</s></prosody></p>\n</speak>"
)
LEXICON = """<?xml version="1.0" encoding="UTF-8"?>
<lexicon version="1.0" xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" alphabet="ipa">
  <lexeme><grapheme>WWW</grapheme><alias>World Wide Web</alias></lexeme>
</lexicon>
"""
ENV = {"TTS_ENGINES": "hibari", "TTS_JOB_PART_CHARS": "100", "TTS_JOB_SSML_MAX_BYTES": "4096"}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ssml-jobs-out")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, out: Path) -> dict[str, str]:
    lexicons = tmp_path_factory.mktemp("lexicons")
    (lexicons / "web.pls").write_text(LEXICON)
    return {**ENV, "TTS_OUTPUT_URI": str(out), "TTS_LEXICON_DIR": str(lexicons)}


@pytest.fixture(scope="module")
def parts_runner(start_server: ServerFactory, env: dict[str, str]) -> FunctionServer:
    return start_server("synthesize_event", **env)


@pytest.fixture(scope="module")
def front(start_server: ServerFactory, env: dict[str, str], parts_runner: FunctionServer) -> FunctionServer:
    return start_server(**env, TTS_JOBS_PUSH_URLS=parts_runner.url)


def job(front: FunctionServer, **body: object) -> requests.Response:
    return requests.post(f"{front.url}/jobs", json=body, timeout=60)


def record(out: Path, job_id: str) -> dict:
    return json.loads((out / "jobs" / job_id / "job.json").read_text())


def test_an_ssml_job_is_cut_between_utterances_and_its_break_is_the_silence_between_parts(
    front: FunctionServer, out: Path
) -> None:
    response = job(front, ssml=SSML, marks=["sentence"], subtitles="vtt")
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["parts"] == len(SENTENCES)
    done = wait_for_job(front.url, accepted["job_id"])
    assert done["status"] == "succeeded", done
    wav = decode(local(done["uri"]).read_bytes())
    assert_speech(wav, RATE, min_s=8)
    marks = json.loads(local(done["marks_uri"]).read_text())
    assert marks["samples"] == len(wav.samples)
    sentences = [m for m in marks["marks"] if m["type"] == "sentence"]
    # Offsets into the caller's markup, as /synthesize gives them: each <s>'s content, verbatim.
    assert [m["value"] for m in sentences] == SENTENCES
    assert all(SSML[m["start"] : m["end"]] == m["value"] for m in sentences)
    gaps = [b["start_sample"] - a["end_sample"] for a, b in itertools.pairwise(sentences)]
    # The 1.5 s break is the pause between parts 1 and 2; the sentence pause elsewhere.
    assert gaps == [PAUSE, round(1.5 * RATE), PAUSE]
    between = wav.samples[sentences[1]["end_sample"] : sentences[2]["start_sample"]]
    assert len(between) == round(1.5 * RATE) and np.abs(between).max() < SILENCE_PEAK
    assert np.abs(wav.samples[sentences[2]["start_sample"] :][: RATE // 2]).max() > 0.05
    cues = list(webvtt.from_buffer(io.StringIO(local(done["subtitles_uri"]).read_text())))
    # A cue per sentence (a long one may take two), timed by the job's marks.
    starts = [c.start_time.in_milliseconds() / 1000 for c in cues]
    assert len(cues) >= len(SENTENCES) and [round(m["start_s"], 3) for m in sentences] == [
        s for s in starts if s in {round(m["start_s"], 3) for m in sentences}
    ]


def test_a_later_part_honours_its_phoneme_and_its_rate(front: FunctionServer, out: Path) -> None:
    accepted = job(front, ssml=SSML).json()
    assert wait_for_job(front.url, accepted["job_id"])["status"] == "succeeded"
    last = record(out, accepted["job_id"])["part_objects"][-1]
    # The last part is the same speech as its sentence spoken alone, inside the rate it was in:
    # the same audio key (its content address), found in storage.
    alone = requests.post(
        f"{front.url}/synthesize",
        json={"ssml": f'<speak><prosody rate="90%">{SENTENCES[3]}</prosody></speak>', "format": "pcm"},
        timeout=120,
    )
    assert alone.status_code == 200, alone.text
    assert alone.json()["object"] == last and alone.json()["cached"] is True
    plain = "Say tomato the way the old harbor keepers do."
    unmarked = requests.post(f"{front.url}/synthesize", json={"text": plain, "format": "pcm"}, timeout=120)
    assert unmarked.json()["object"] != last
    spoken = np.frombuffer((out / last).read_bytes(), "<i2")
    assert not np.array_equal(spoken, np.frombuffer((out / unmarked.json()["object"]).read_bytes(), "<i2"))


def test_a_jobs_lexicon_applies_to_every_part_and_keys_its_audio(front: FunctionServer, out: Path) -> None:
    text = "\n".join(
        [
            "The first part of this document has no names that need a lexicon at all.",
            "The second part of this document reads WWW the way the lexicon says it is read.",
        ]
    )
    without = job(front, text=text).json()
    with_lexicon = job(front, text=text, lexicons=["web"]).json()
    for accepted in (without, with_lexicon):
        assert accepted["parts"] == 2 and wait_for_job(front.url, accepted["job_id"])["status"] == "succeeded"
    plain, read = record(out, without["job_id"]), record(out, with_lexicon["job_id"])
    assert plain["part_objects"][0] == read["part_objects"][0]  # no grapheme of the lexicon in it
    assert plain["part_objects"][1] != read["part_objects"][1]
    # The part read with the lexicon is the alias spoken: the sentence with the alias written out.
    alias = text.splitlines()[1].replace("WWW", "World Wide Web")
    as_alias = requests.post(f"{front.url}/synthesize", json={"text": alias, "format": "pcm"}, timeout=120)
    heard = np.frombuffer((out / read["part_objects"][1]).read_bytes(), "<i2")
    assert np.array_equal(heard, np.frombuffer((out / as_alias.json()["object"]).read_bytes(), "<i2"))


def test_malformed_or_oversized_ssml_jobs_are_refused_naming_the_problem(front: FunctionServer) -> None:
    markup = "<speak>\n<s>Fine words.</s> <s>Then <foo/> here.</s></speak>"
    malformed = job(front, ssml=markup)
    assert malformed.status_code == 400
    error = malformed.json()["error"]
    assert error["code"] == "invalid_ssml" and error["field"] == "ssml"
    where = (error["element"], error["line"], error["column"], error["offset"])
    assert where == ("foo", 2, 28, markup.index("<foo"))
    unclosed = job(front, text="<speak><s>Open", text_type="ssml")
    assert unclosed.status_code == 400 and unclosed.json()["error"]["field"] == "text"
    assert "line 1" in unclosed.json()["error"]["message"]
    too_long = job(front, ssml="<speak>" + "<s>Many small sentences here.</s>" * 140 + "</speak>")
    assert too_long.status_code == 400
    assert (
        too_long.json()["error"]["code"] == "ssml_too_long" and "4096" in too_long.json()["error"]["message"]
    )


@pytest.fixture(scope="module")
def events(start_server: ServerFactory, env: dict[str, str], parts_runner: FunctionServer) -> FunctionServer:
    """An event instance that turns a message too long for one event into a job."""
    return start_server(
        "synthesize_event", **env, TTS_MAX_EVENT_CHARS="150", TTS_JOBS_PUSH_URLS=parts_runner.url
    )


def test_an_ssml_message_too_long_for_one_event_becomes_a_job(events: FunctionServer, out: Path) -> None:
    delivery = eventarc_pubsub({"ssml": SSML, "output": "events/ssml-chapter", "marks": ["sentence"]})
    acknowledged(delivery.to(events))
    manifest = out / "events" / "ssml-chapter.wav.json"
    assert wait_until(manifest.exists, 120)
    done = json.loads(manifest.read_text())
    assert done["status"] == "succeeded" and done["parts"] == len(SENTENCES)
    marks = json.loads(local(done["marks_uri"]).read_text())["marks"]
    assert [m["value"] for m in marks if m["type"] == "sentence"] == SENTENCES


def test_a_malformed_ssml_message_is_a_failed_manifest_not_a_retry(events: FunctionServer, out: Path) -> None:
    delivery = eventarc_pubsub({"ssml": "<speak><s>Broken <sub>x</sub></s></speak>", "output": "events/bad"})
    response = delivery.to(events)
    acknowledged(response)  # acknowledged: a redelivery could never succeed
    failed = json.loads((out / "events" / "bad.wav.json").read_text())
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "invalid_ssml" and "<sub> at line 1" in failed["error"]["message"]
    assert not (out / "events" / "bad.wav").exists()


def cut(markup: str, max_chars: int = 45, max_bytes: int = 65536) -> list:
    from function import ssml
    from function.jobs.markup_parts import markup_parts

    document = ssml.parse(markup, max_bytes=65536, max_chars=10_000)
    return markup_parts(
        markup, document, max_chars=max_chars, max_bytes=max_bytes, sample_rate=RATE, pause_ms=200
    )


def test_cuts_reopen_the_elements_around_them_and_never_split_a_reference() -> None:
    markup = (
        '<speak xml:lang="en-US"><prosody rate="x-slow"><s>Tom &amp; Jerry ran far from home &amp;</s>'
        '<break strength="strong"/><break time="100ms"/><s>Then they came back to the house at night.</s>'
        "</prosody></speak>"
    )
    first, second = cut(markup)
    assert first.ssml == (
        '<speak xml:lang="en-US"><prosody rate="x-slow"><s>Tom &amp; Jerry ran far from home &amp;</s>'
        "</prosody></speak>"
    )
    assert second.ssml.startswith('<speak xml:lang="en-US"><prosody rate="x-slow"><s>Then')
    # Offsets into a part map onto the caller's markup by the part's shift.
    then = second.ssml.index("Then")
    assert markup[then + second.shift :].startswith("Then they came back")
    # Two breaks between the parts: their silence, summed (0.7 s + 0.1 s), not the sentence pause.
    assert (first.pause_samples, second.pause_samples) == (0, round(0.7 * RATE) + round(0.1 * RATE))


def test_each_part_is_planned_from_the_parse_that_checked_it() -> None:
    """The job plans each part from the document its check parsed (not a second parse): it must be
    what the part's own instance parses from the part's markup, or the audio the job plans would
    not be the part's (a 409 when the part runs)."""
    from function import ssml

    parts = cut(SSML, max_chars=100)
    assert len(parts) == len(SENTENCES)
    for part in parts:
        assert part.document == ssml.parse(part.ssml, max_bytes=65536, max_chars=10_000)


def test_markup_that_a_cut_would_break_is_refused_at_submission() -> None:
    from function.errors import ApiError

    cdata = "<speak><![CDATA[One sentence here that is long enough. Then R&D says a long one too.]]></speak>"
    with pytest.raises(ApiError) as refused:
        cut(cdata)
    assert refused.value.code == "invalid_ssml" and "cannot be cut" in refused.value.message
    with pytest.raises(ApiError) as too_long:
        cut("<speak><s>" + "word " * 20 + "</s></speak>", max_chars=45)
    assert too_long.value.code == "text_too_long" and "offset 10" in too_long.value.message


def test_parts_fit_the_markup_limit_from_the_first_utterance_on() -> None:
    sentence = '<s>Say <sub alias="World Wide Web">WWW</sub> {n} times.</s>'
    markup = "<speak>" + "".join(sentence.format(n=n) for n in range(12)) + "</speak>"
    parts = cut(markup, max_chars=2000, max_bytes=256)
    # Half the limit for the caller's markup, the rest for the re-opened tags.
    assert len(parts) >= 6 and all(len(p.ssml.encode()) <= 256 for p in parts)
    assert "".join(p.ssml.removeprefix("<speak>").removesuffix("</speak>") for p in parts) == markup[7:-8]
