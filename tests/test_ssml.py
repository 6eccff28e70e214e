"""SSML and lexicons without a model: the hardened parser (hostile input refused fast, with the
element and where it is), the document it builds (offsets into the caller's string), say-as,
lexicons, and the audio key (a plain request's is unchanged; documents and lexicon edits change it)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from function import lexicons, pipeline, ssml
from function.config import Settings
from function.document import Break, Utterance, plain
from function.errors import ApiError
from function.registry import Engines
from function.sayas import read_out
from function.schema import SynthesizeRequest

LEXICONS = Path(__file__).parent / "data" / "lexicons"
LIMITS = {"max_bytes": 64 * 1024, "max_chars": 4096}
# Each is refused with invalid_ssml naming this element (None: the XML itself is not well formed).
HOSTILE = {
    "billion laughs": (
        '<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;">]><speak>&d;&d;</speak>',
        "!DOCTYPE",
    ),
    "external entity": (
        '<!DOCTYPE speak [<!ENTITY x SYSTEM "file:///etc/passwd">]><speak>&x;</speak>',
        "!DOCTYPE",
    ),
    "external DTD": ('<!DOCTYPE speak SYSTEM "http://127.0.0.1:9/x.dtd"><speak>hi</speak>', "!DOCTYPE"),
    "deep nesting": ("<speak>" + "<s>" * 100 + "hi" + "</s>" * 100 + "</speak>", "s"),
    "huge attribute": (f'<speak><sub alias="{"a" * 50_000}">x</sub></speak>', "sub"),
    "unknown element": ("<speak>hi <audio src='x.mp3'/></speak>", "audio"),
    "unknown attribute": ('<speak><prosody pitch="high">hi</prosody></speak>', "prosody"),
    "text outside speak": ("hello <speak>hi</speak>", None),
    "not speak": ("<p>hi</p>", "p"),
    "undeclared entity": ("<speak>&nbsp;</speak>", None),
    "unclosed": ("<speak><s>hi</speak>", None),
    "too many elements": ("<speak>" + "<break/>" * 20_000 + "</speak>", "break"),
}


def parse(source: str) -> ssml.Document:
    return ssml.parse(source, **LIMITS)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_input_is_refused_fast_with_the_element_named(name: str) -> None:
    source, element = HOSTILE[name]
    started = time.perf_counter()
    with pytest.raises(ApiError) as caught:
        ssml.parse(source, max_bytes=1024 * 1024, max_chars=4096)
    elapsed = time.perf_counter() - started
    error = caught.value
    assert error.status == 400 and error.code == "invalid_ssml" and error.field == "ssml"
    assert elapsed < 0.5, f"{name} took {elapsed:.3f} s"
    body = error.body()["error"]
    if element is None:
        assert "not well-formed" in error.message and body["line"] >= 1
    else:
        assert body["element"] == element and f"<{element}>" in error.message
        assert "offset" in body


def test_markup_limit_names_both_limits() -> None:
    with pytest.raises(ApiError) as caught:
        ssml.parse("<speak>" + "hi " * 1000 + "</speak>", max_bytes=1024, max_chars=300)
    assert caught.value.code == "ssml_too_long"
    assert "1024 bytes" in caught.value.message and "300-character" in caught.value.message


def test_the_characters_spoken_count_against_the_character_limit() -> None:
    with pytest.raises(ApiError) as caught:
        pipeline.plan(
            SynthesizeRequest(ssml=f'<speak><sub alias="{"word " * 30}">x</sub></speak>'),
            Engines(Settings()),
            Settings(),
            max_chars=100,
            timeout_s=300,
        )
    assert caught.value.code == "text_too_long" and caught.value.field == "ssml"
    assert (
        "speaks 149 characters; the limit is 100" in caught.value.message
        and "65536 bytes" in caught.value.message
    )


def test_elements_become_utterances_breaks_and_offsets_into_the_source() -> None:
    source = (
        '<speak xml:lang="zh-CN">我住在<phoneme alphabet="pinyin" ph="chóng qìng">重庆</phoneme>。'
        '第二句！<break time="750ms"/>\n<s>Hello &amp; <sub alias="World Wide Web">WWW</sub></s>'
        '<prosody rate="50%">慢</prosody><lang xml:lang="en-GB">tomato</lang></speak>'
    )
    document = parse(source)
    assert document.language == "zh-CN"
    kinds = [type(item).__name__ for item in document.items]
    assert kinds == ["Utterance", "Utterance", "Break", "Utterance", "Utterance", "Utterance"]
    first, second, pause, english, slow, british = document.items
    assert isinstance(pause, Break) and pause.seconds == 0.75
    assert isinstance(first, Utterance) and first.text == "我住在重庆。"
    phoneme = first.segments[1]
    assert phoneme.phoneme is not None and phoneme.phoneme.ph == "chóng qìng"
    assert source[phoneme.start : phoneme.end].startswith("<phoneme") and source[
        phoneme.end - 10 :
    ].startswith("</phoneme>")
    assert isinstance(second, Utterance) and source[second.start : second.end] == "第二句！"
    assert isinstance(english, Utterance) and english.text == "Hello & World Wide Web"
    assert source[english.start : english.end].startswith("Hello &amp;")
    assert isinstance(slow, Utterance) and slow.rate == 0.5 and slow.text == "慢"
    assert isinstance(british, Utterance) and british.lang == "en-GB"
    assert document.text == "我住在重庆。\n第二句！\nHello & World Wide Web\n慢\ntomato"


@pytest.mark.parametrize(
    ("text", "interpret_as", "language", "expected"),
    [
        ("138 0013 8000", "telephone", "zh", "幺三八，零零幺三，八零零零"),
        ("555-0123", "telephone", "en", "five five five, zero one two three"),
        ("2024", "digits", "zh", "二零二四"),
        ("2024", "digits", "en", "two zero two four"),
        ("3", "ordinal", "zh", "第3"),
        ("22", "ordinal", "en", "22nd"),
        ("2024-03-05", "date", "zh", "2024年3月5日"),
        ("2024-03-05", "date", "en", "March 5th, 2024"),
        ("14:30", "time", "zh", "14点30分"),
        ("$12.50", "currency", "en", "$12.50"),
        ("12 USD", "currency", "zh", "12美元"),
        ("SSML", "characters", "en", "S S M L"),
    ],
)
def test_say_as_writes_the_text_out_for_the_voice_language(
    text: str, interpret_as: str, language: str, expected: str
) -> None:
    assert read_out(text, interpret_as, None, language) == expected


def test_a_lexicon_turns_its_graphemes_into_phonemes_and_aliases() -> None:
    lexicon = lexicons.parse("names", (LEXICONS / "names.pls").read_bytes())
    text = "单田芳 met Siobhan at W3C, not Siobhans."
    document = lexicons.apply(plain(text), [lexicon])
    read = [(s.text, s.phoneme.ph if s.phoneme else None, s.source) for s in document.segments]
    assert ("单田芳", "shan4 tian2 fang1", "lexicon:names") in read
    assert ("Siobhan", "ʃɪˈvɔn", "lexicon:names") in read
    assert ("World Wide Web Consortium", None, "lexicon:names") in read
    assert sum(1 for _, _, source in read if source) == 3, "Siobhans is another word"
    for segment in document.segments:
        if segment.source == "lexicon:names" and segment.phoneme:
            assert text[segment.start : segment.end] == segment.text


@pytest.mark.parametrize(
    "content",
    [
        b'<!DOCTYPE lexicon [<!ENTITY a "b">]><lexicon><lexeme><grapheme>&a;</grapheme></lexeme></lexicon>',
        b"<lexicon><lexeme><grapheme>x</grapheme></lexeme></lexicon>",
        b'<lexicon alphabet="x-pinyin"><lexeme><grapheme>x</grapheme><phoneme>q</phoneme></lexeme></lexicon>',
        b"<speak/>",
    ],
)
def test_a_bad_lexicon_is_refused_naming_it(content: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        lexicons.parse("bad", content)
    assert caught.value.code == "invalid_lexicon" and "'bad'" in caught.value.message


def hibari_plan(settings_: Settings, **request: object) -> pipeline.Plan:
    return pipeline.plan(
        SynthesizeRequest.model_validate(request),
        Engines(settings_),
        settings_,
        max_chars=4096,
        timeout_s=300,
    )


def test_a_plain_request_keeps_the_key_it_had_before_ssml(tmp_path: Path) -> None:
    """The key main computes: sha256 of [engine, model version, voice, text, speed, format]; a
    deployment with lexicons that match nothing in the text keeps it too."""
    shutil.copy(LEXICONS / "names.pls", tmp_path / "names.pls")
    for configured in (Settings(), Settings(lexicon_dir=tmp_path, lexicons="names")):
        plan = hibari_plan(configured, text="Hello there, world.")
        names = [
            plan.engine.name,
            plan.engine.model_version,
            plan.voice.id,
            "Hello there, world.",
            1.0,
            "wav",
        ]
        assert plan.document is None
        assert plan.audio_key == hashlib.sha256(json.dumps(names, ensure_ascii=False).encode()).hexdigest()


def test_documents_and_lexicon_edits_change_the_key(tmp_path: Path) -> None:
    one = hibari_plan(Settings(), ssml='<speak><phoneme ph="təˈmeɪtoʊ">tomato</phoneme></speak>')
    two = hibari_plan(Settings(), ssml='<speak><phoneme ph="təˈmɑːtoʊ">tomato</phoneme></speak>')
    plain = hibari_plan(Settings(), text="tomato")
    assert one.text == two.text == plain.text == "tomato"
    assert len({one.audio_key, two.audio_key, plain.audio_key}) == 3
    # The same speech laid out differently is the same audio.
    spaced = hibari_plan(Settings(), ssml='<speak>\n  <phoneme ph="təˈmeɪtoʊ">tomato</phoneme>\n</speak>')
    assert spaced.audio_key == one.audio_key
    shutil.copy(LEXICONS / "names.pls", tmp_path / "names.pls")
    before = hibari_plan(Settings(lexicon_dir=tmp_path), text="Siobhan is here.", lexicons=["names"])
    (tmp_path / "names.pls").write_text(
        (LEXICONS / "names.pls").read_text().replace("ʃɪˈvɔn", "ʃəˈvɔn"), encoding="utf-8"
    )
    lexicons._libraries.clear()  # a new process (a new deployment) reads the edited file
    after = hibari_plan(Settings(lexicon_dir=tmp_path), text="Siobhan is here.", lexicons=["names"])
    assert before.document is not None and after.document is not None
    assert before.audio_key != after.audio_key


def test_a_documents_key_is_the_one_it_had_before_the_key_was_made_faster() -> None:
    """Audio stored for SSML keeps its address: the key is still the sha256 of what
    ``dataclasses.asdict`` gave, less the offsets and sources (the formula before the faster one)."""
    markup = (
        '<speak xml:lang="en-US"><p><s>Hi Siobhan, <sub alias="World Wide Web">WWW</sub>.</s>'
        '<break time="300ms"/><s>Call <say-as interpret-as="telephone">555 1234</say-as>, '
        '<phoneme ph="təˈmɑːtoʊ">tomato'
        '</phoneme>.</s></p><prosody rate="slow">Slow.</prosody><lang xml:lang="en-GB">Colour.</lang></speak>'
    )
    lexicon = lexicons.parse("t", (LEXICONS / "names.pls").read_bytes())
    document = lexicons.apply(ssml.parse(markup, **LIMITS), [lexicon])

    def before(item: object) -> dict[str, object]:
        fields = asdict(item)  # type: ignore[call-overload]
        fields.pop("start", None)
        fields.pop("end", None)
        for segment in fields.get("segments", ()):
            for name in ("start", "end", "source"):
                segment.pop(name)
        return {"kind": type(item).__name__, **fields}

    canonical = json.dumps(
        [[before(i) for i in document.items], "en-US", document.lexicons], ensure_ascii=False
    )
    assert document.key() == f"ssml-document:{hashlib.sha256(canonical.encode()).hexdigest()}"
    assert any(isinstance(i, Break) for i in document.items)
    assert "lexicon:t" in [s.source for s in document.segments]


def test_unknown_lexicon_is_a_400_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ApiError) as caught:
        hibari_plan(Settings(lexicon_dir=tmp_path), text="hi", lexicons=["nope"])
    assert caught.value.code == "unknown_lexicon" and "'nope'" in caught.value.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_string_parses_or_is_a_400(source: str) -> None:
    try:
        document = ssml.parse(source, **LIMITS)
    except ApiError as exc:
        assert exc.status == 400 and exc.code in ("invalid_ssml", "ssml_too_long")
    else:
        assert isinstance(document.text, str)


_WORDS = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")), min_size=1, max_size=40
).filter(str.strip)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "s", "p", "sub", "break"]), _WORDS), max_size=8))
def test_generated_documents_keep_every_offset_inside_the_source(parts: list[tuple[str, str]]) -> None:
    from xml.sax.saxutils import escape, quoteattr

    body = []
    for element, words in parts:
        if element == "":
            body.append(escape(words))
        elif element == "sub":
            body.append(f"<sub alias={quoteattr(words)}>x</sub>")
        elif element == "break":
            body.append('<break time="100ms"/>')
        else:
            body.append(f"<{element}>{escape(words)}</{element}>")
    source = f"<speak>{''.join(body)}</speak>"
    document = parse(source)
    for item in document.items:
        assert 0 <= item.start <= item.end <= len(source)
