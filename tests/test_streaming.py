"""Streaming over HTTP (function.streaming), against real functions-framework servers: the official
openai SDK's streaming helpers, raw chunked audio and server-sent events, the cache after a stream,
a client that disconnects mid-stream (over a real socket), and errors before the first byte."""

from __future__ import annotations

import base64
import json
import socket
import struct
import time
import uuid
from pathlib import Path

import openai
import pytest
import requests

from tests import log_contract as contract
from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory

RATE = 24_000
SENTENCES = [
    "The first sentence arrives on its own.",
    "A second one follows it closely.",
    "Then a third sentence, a little longer than the others were.",
    "And the fourth one ends the text.",
]


def text(tag: str) -> str:
    """A multi-sentence text no other test asks for (so the first request synthesizes it)."""
    return " ".join(SENTENCES) + f" Tag {tag}."


@pytest.fixture(scope="module")
def streaming(start_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> FunctionServer:
    server = start_server(TTS_OUTPUT_URI=str(tmp_path_factory.mktemp("streamed")), TTS_ENGINES="hibari")
    not_streamed(server, "Load the model before the log lines are pinned.", "wav")
    return server


@pytest.fixture(scope="module")
def plain(start_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> FunctionServer:
    """A second deployment with its own storage: the same request synthesized without streaming."""
    return start_server(TTS_OUTPUT_URI=str(tmp_path_factory.mktemp("plain")), TTS_ENGINES="hibari")


def sdk(server: FunctionServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-checked", max_retries=0)


def not_streamed(server: FunctionServer, words: str, fmt: str) -> bytes:
    response = requests.post(
        f"{server.url}/synthesize?response=audio", json={"text": words, "format": fmt}, timeout=60
    )
    assert response.status_code == 200 and response.headers.get("Transfer-Encoding") != "chunked"
    return response.content


def log_line(server: FunctionServer, request_id: str, timeout_s: float = 10) -> dict:
    """The request's one log line, which a stream writes when it ends."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in server.logs().splitlines() if x.startswith("{")]
        found = [line for line in lines if line.get("request_id") == request_id]
        if found:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no log line for request {request_id}")


def stored_path(uri: str) -> Path:
    assert uri.startswith("file://")
    return Path(uri.removeprefix("file://"))


def test_openai_sdk_streams_pcm_as_each_sentence_is_ready(
    streaming: FunctionServer, plain: FunctionServer
) -> None:
    words = text(uuid.uuid4().hex[:6])
    request_id = uuid.uuid4().hex
    with sdk(streaming).audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="alloy",
        input=words,
        response_format="pcm",
        extra_headers={"X-Request-Id": request_id},
    ) as response:
        assert response.headers["content-type"] == "audio/pcm"
        assert response.headers["transfer-encoding"] == "chunked"
        chunks = list(response.iter_bytes())
    streamed = b"".join(chunks)
    assert streamed == not_streamed(plain, words, "pcm")  # the very same samples
    assert_speech(decode(streamed, "pcm", pcm_rate=RATE), RATE, min_s=4)

    line = log_line(streaming, request_id)
    assert set(line) == contract.HTTP | contract.SYNTHESIZED | contract.STREAM
    assert line["stream"] == "audio" and line["disconnected"] is False and line["cached"] is False
    # One chunk per sentence and per pause between them (at least), the first well before the end.
    assert line["chunks"] >= 2 * len(SENTENCES)
    assert 0 < line["ttfb_ms"] < line["latency_ms"]
    # Stored write-once after the last chunk: the same bytes.
    assert stored_path(line["uri"]).read_bytes() == streamed


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus"])
def test_streamed_formats_decode_to_the_non_streamed_audio(
    streaming: FunctionServer, plain: FunctionServer, fmt: str
) -> None:
    words = text(uuid.uuid4().hex[:6])
    with sdk(streaming).audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=words, response_format=fmt
    ) as response:
        uri = response.headers["x-audio-uri"]
        streamed = b"".join(response.iter_bytes())
    whole = not_streamed(plain, words, fmt)
    stored = stored_path(uri).read_bytes()
    if fmt == "wav":
        # The streamed header cannot know the sizes (0xFFFFFFFF, as OpenAI streams WAV); the stored
        # file has them; the samples are the same as the non-streamed request's.
        assert struct.unpack_from("<I", streamed, 4)[0] == 0xFFFFFFFF
        assert struct.unpack_from("<I", streamed, 40)[0] == 0xFFFFFFFF
        assert streamed[44:] == whole[44:] == stored[44:] and stored == whole
        assert_speech(decode(streamed), RATE, min_s=4)
        return
    expected = decode(whole, fmt)
    audio = decode(streamed, fmt)  # libsndfile: an MP3 stream's length is estimated (CBR: right)
    assert_speech(audio, RATE, min_s=4)
    # Lossy: the same length within the codec's padding (MP3's LAME tag, which says how much to
    # trim, is only in the stored file), and as loud.
    assert abs(audio.duration_s - expected.duration_s) < 0.1
    assert abs(audio.rms - expected.rms) < 0.2 * expected.rms
    if fmt == "opus":
        assert stored == streamed  # Ogg pages are never revisited: the stream is the file
    else:
        assert decode(stored, fmt).duration_s == pytest.approx(expected.duration_s, abs=0.01)


def test_sse_deltas_reassemble_to_the_audio(streaming: FunctionServer, plain: FunctionServer) -> None:
    words = text(uuid.uuid4().hex[:6])
    with sdk(streaming).audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=words, response_format="pcm", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line[len("data: ") :]) for line in response.iter_lines() if line.startswith("data: ")
        ]
    *deltas, done = events
    assert len(deltas) >= len(SENTENCES) and {e["type"] for e in deltas} == {"speech.audio.delta"}
    assert done == {
        "type": "speech.audio.done",
        "usage": {"input_tokens": len(words), "output_tokens": 0, "total_tokens": len(words)},
    }
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert audio == not_streamed(plain, words, "pcm")


def test_synthesize_streams_with_stream_true_and_a_cache_hit_streams_the_stored_object(
    streaming: FunctionServer,
) -> None:
    body = {"text": text(uuid.uuid4().hex[:6]), "format": "mp3", "stream": True}
    first = requests.post(f"{streaming.url}/synthesize", json=body, timeout=60)
    assert first.status_code == 200 and first.headers["Transfer-Encoding"] == "chunked"
    assert first.headers["Content-Type"] == "audio/mpeg" and first.headers["X-Audio-Cached"] == "false"
    request_id = uuid.uuid4().hex
    again = requests.post(
        f"{streaming.url}/synthesize", json=body, headers={"X-Request-Id": request_id}, timeout=60
    )
    assert again.headers["X-Audio-Cached"] == "true" and again.headers["Transfer-Encoding"] == "chunked"
    assert again.content == stored_path(again.headers["X-Audio-Uri"]).read_bytes()
    line = log_line(streaming, request_id)
    assert set(line) == contract.HTTP | contract.RESULT | contract.STREAM and line["cached"] is True
    assert_speech(decode(first.content, "mp3"), RATE, min_s=4)


def test_a_client_that_disconnects_stops_the_synthesis_and_nothing_is_stored(
    streaming: FunctionServer,
) -> None:
    many = " ".join(f"Sentence number {i} of a long text that nobody will hear." for i in range(40))
    request_id = uuid.uuid4().hex
    body = json.dumps({"text": many, "format": "pcm", "stream": True}).encode()
    head = (
        f"POST /synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-Id: {request_id}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", streaming.port), timeout=30) as connection:
        connection.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < 1000:
            received += connection.recv(65536)
    headers = received.partition(b"\r\n\r\n")[0].decode()
    assert headers.startswith("HTTP/1.1 200") and "Transfer-Encoding: chunked" in headers
    uri = next(h.split(": ", 1)[1] for h in headers.split("\r\n") if h.startswith("X-Audio-Uri"))

    line = log_line(streaming, request_id)
    assert set(line) == contract.HTTP | contract.STREAM_UNFINISHED
    assert line["disconnected"] is True
    # 40 sentences and 39 pauses: it stopped within a piece of the client leaving.
    assert line["chunks"] <= 4, line
    assert not stored_path(uri).exists()
    # The instance serves the next request.
    assert requests.get(f"{streaming.url}/healthz", timeout=5).ok


def test_errors_before_the_first_byte_are_json_errors(streaming: FunctionServer) -> None:
    client = sdk(streaming)
    speech = client.audio.speech.with_streaming_response
    with (
        pytest.raises(openai.BadRequestError) as unknown,
        speech.create(model="tts-1", voice="darth", input="Hi."),
    ):
        pass
    assert "darth" in str(unknown.value)
    cases = [
        ({"text": "", "stream": True}, "text"),
        ({"text": "Hi.", "stream": True, "stream_format": "xml"}, "stream_format"),
        ({"text": "Hi.", "stream": "yes"}, "stream"),
        ({"text": "Hi.", "stream": True, "voice": "nobody"}, "voice"),
    ]
    for body, field in cases:
        response = requests.post(f"{streaming.url}/synthesize", json=body, timeout=10)
        assert response.status_code == 400, body
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]["field"] == field
    sse = requests.post(
        f"{streaming.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": "Hi.", "stream_format": "binary"},
        timeout=10,
    )
    assert sse.status_code == 400 and sse.json()["error"]["field"] == "stream_format"


def test_a_failure_after_the_first_byte_ends_the_stream_without_storing(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    # A real storage failure mid-stream: the output folder becomes a file once the audio flows.
    out = tmp_path / "out"
    out.mkdir()
    server = start_server(TTS_OUTPUT_URI=str(out), TTS_ENGINES="hibari")
    many = " ".join(f"Sentence {i} of a text whose audio cannot be stored." for i in range(30))

    def break_storage() -> None:
        out.rmdir()
        out.write_text("not a folder")

    def stream(stream_format: str, request_id: str) -> requests.Response:
        body = {"text": many, "format": "pcm", "stream": True, "stream_format": stream_format}
        headers = {"X-Request-Id": request_id}
        return requests.post(f"{server.url}/synthesize", json=body, headers=headers, stream=True, timeout=60)

    request_id = uuid.uuid4().hex
    with stream("sse", request_id) as response:
        lines = (line for line in response.iter_lines() if line.startswith(b"data: "))
        assert json.loads(next(lines)[6:])["type"] == "speech.audio.delta"
        break_storage()
        *deltas, last = [json.loads(line[6:]) for line in lines]
    # SSE: an error event (the status line said 200 long ago), and no done event.
    assert {e["type"] for e in deltas} == {"speech.audio.delta"}
    assert last["type"] == "error" and last["error"]["code"] == "storage_unavailable"
    line = log_line(server, request_id)
    assert line["severity"] == "ERROR" and line["error"] == "storage_unavailable" and "cause" in line
    assert line["httpRequest"]["status"] == 200 and line["disconnected"] is False
    # (this instance's first request: the cold start's load_ms too)
    assert set(line) == contract.HTTP | contract.STREAM_UNFINISHED | contract.ERROR | {"cause", "load_ms"}

    out.unlink()
    out.mkdir()
    with stream("audio", uuid.uuid4().hex) as response:
        chunks = response.iter_content(None)
        assert next(chunks)
        break_storage()
        # Raw audio: the transfer is cut off before its last chunk, never a complete-looking file.
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            list(chunks)
    assert out.is_file()  # nothing was written in its place


# --- CosyVoice: upstream's stream mode, audio every 100 speech tokens, stored under its own key ---

COSY_RATE = 22_050
# One sentence, well under upstream's 60-token pieces: one piece, which the tiny model (its LLM
# speaks to the length limit, 20 speech tokens per text token) speaks as several hops.
ONE_PIECE = "A single sentence of CosyVoice speech, heard hop by hop"


@pytest.fixture(scope="module")
def cosy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from loadtest.upstream_cosyvoice.random_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("cosyvoice-tiny"))


def cosy_server(start_server: ServerFactory, model: Path, out: Path) -> FunctionServer:
    return start_server(
        TTS_ENGINES="cosyvoice", TTS_MODEL_DIR=str(model), TTS_OUTPUT_URI=str(out), TTS_THREADS="1"
    )


@pytest.fixture(scope="module")
def cosy_streaming(
    start_server: ServerFactory, cosy_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> FunctionServer:
    return cosy_server(start_server, cosy_model, tmp_path_factory.mktemp("cosy-streamed"))


@pytest.fixture(scope="module")
def cosy_other(
    start_server: ServerFactory, cosy_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> FunctionServer:
    """A second CosyVoice deployment with its own storage."""
    return cosy_server(start_server, cosy_model, tmp_path_factory.mktemp("cosy-other"))


def cosy_stream(server: FunctionServer, words: str, **more: object) -> tuple[requests.Response, str]:
    """A streamed PCM request for ``words`` in CosyVoice's English voice, and its request id."""
    body = {"text": words, "voice": "en-female", "format": "pcm", "stream": True, **more}
    request_id = uuid.uuid4().hex
    response = requests.post(
        f"{server.url}/synthesize", json=body, headers={"X-Request-Id": request_id}, timeout=120
    )
    assert response.status_code == 200, response.text
    assert response.headers["Transfer-Encoding"] == "chunked"
    return response, request_id


def test_cosyvoice_streams_hops_under_its_own_key(
    cosy_streaming: FunctionServer, cosy_other: FunctionServer, cosy_model: Path
) -> None:
    from function.engines.cosyvoice import CosyVoiceEngine
    from function.text import normalize_text

    words = f"{ONE_PIECE} {uuid.uuid4().hex[:6]}."
    assert len(CosyVoiceEngine(cosy_model).pieces(normalize_text(words))) == 1

    streamed, request_id = cosy_stream(cosy_streaming, words)
    uri = streamed.headers["X-Audio-Uri"]
    assert stored_path(uri).name.endswith("-stream.pcm") and streamed.headers["X-Audio-Cached"] == "false"
    line = log_line(cosy_streaming, request_id)
    # One piece, several chunks: its first hop went out before the piece was spoken.
    assert line["chunks"] >= 2 and line["ttfb_ms"] < line["latency_ms"], line
    assert stored_path(uri).read_bytes() == streamed.content
    assert_speech(decode(streamed.content, "pcm", pcm_rate=COSY_RATE), COSY_RATE, min_s=2)

    # The same request again: a cache hit on the streamed object.
    again, _ = cosy_stream(cosy_streaming, words)
    assert again.headers["X-Audio-Cached"] == "true" and again.headers["X-Audio-Uri"] == uri
    assert again.content == streamed.content
    # Deterministic: another instance with its own storage streams the very same bytes.
    elsewhere, _ = cosy_stream(cosy_other, words)
    assert elsewhere.headers["X-Audio-Cached"] == "false" and elsewhere.content == streamed.content

    # A whole (non-streamed) request never gets the streamed audio: it synthesizes its own, as
    # long (the same speech tokens; each hop rounds its mel frames down: within 2 frames), other
    # samples (upstream's stream mode is another computation).
    whole = requests.post(
        f"{cosy_streaming.url}/synthesize?response=audio",
        json={"text": words, "voice": "en-female", "format": "pcm"},
        timeout=120,
    )
    assert whole.headers["X-Audio-Cached"] == "false"
    assert "-stream" not in stored_path(whole.headers["X-Audio-Uri"]).name
    assert abs(len(whole.content) - len(streamed.content)) <= 2 * 256 * 2  # 16-bit samples
    assert whole.content != streamed.content
    # Once the whole audio is stored, a stream sends it (the request's own audio, from storage).
    after, _ = cosy_stream(cosy_streaming, words)
    assert after.headers["X-Audio-Cached"] == "true"
    assert after.headers["X-Audio-Uri"] == whole.headers["X-Audio-Uri"] and after.content == whole.content


def test_cosyvoice_streams_other_speeds_whole_under_the_plain_key(cosy_other: FunctionServer) -> None:
    words = f"{ONE_PIECE}, a little faster {uuid.uuid4().hex[:6]}."
    streamed, request_id = cosy_stream(cosy_other, words, speed=1.5)
    # Upstream changes speed only outside stream mode: the piece is spoken whole, as without a
    # stream, so it is the plain key's audio and a whole request is a cache hit on it.
    assert "-stream" not in stored_path(streamed.headers["X-Audio-Uri"]).name
    assert log_line(cosy_other, request_id)["chunks"] == 1
    whole = requests.post(
        f"{cosy_other.url}/synthesize?response=audio",
        json={"text": words, "voice": "en-female", "format": "pcm", "speed": 1.5},
        timeout=120,
    )
    assert whole.headers["X-Audio-Cached"] == "true" and whole.content == streamed.content
