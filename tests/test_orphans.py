"""Issue 24, defect 7: the local store never adopts bytes it did not write. A writer that dies
between linking an object and linking its metadata leaves bytes without metadata; the next writer
of that name must not describe them with its own metadata (silent wrong audio)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory
from tests.test_events import acknowledged, eventarc_pubsub

RATE = 24_000


def test_an_orphan_is_moved_aside_and_the_next_writer_stores_its_own_audio(
    start_server: ServerFactory, server: FunctionServer, tmp_path: Path
) -> None:
    first = requests.post(
        f"{server.url}/synthesize?response=audio", json={"text": "One hundred dollars."}, timeout=60
    )
    assert first.status_code == 200
    out = tmp_path / "out"
    # The state a writer killed between its two links leaves (simulated: the instant cannot be hit
    # for real): event A's audio at its name, no metadata beside it.
    (out / "orders").mkdir(parents=True)
    (out / "orders" / "42.wav").write_bytes(first.content)
    events = start_server(target="synthesize_event", TTS_OUTPUT_URI=str(out), TTS_ENGINES="hibari")
    text = "Nine thousand dollars, and not one cent less, for the whole order."
    delivery = eventarc_pubsub({"text": text, "output": "orders/42"})
    acknowledged(delivery.to(events))

    record = json.loads((out / "orders" / "42.wav.json").read_text())
    assert record["status"] == "succeeded" and record["source"]["id"] == delivery.event_id
    stored = decode((out / "orders" / "42.wav").read_bytes())
    assert stored.duration_s == pytest.approx(record["duration_s"], abs=0.01)
    assert stored.duration_s != pytest.approx(decode(first.content).duration_s, abs=0.05)
    assert_speech(stored, RATE, min_s=2)
    [orphan] = (out / ".orphans").glob("*/orders/42.wav")
    assert orphan.read_bytes() == first.content  # moved aside, not lost
