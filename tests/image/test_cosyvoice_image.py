"""The CosyVoice image: the Dockerfile's cosyvoice stages built for real (ENGINES=cosyvoice), with
two stand-ins for what these machines cannot reach (tests/image/model_sources.py): the pinned CPU
torch from a loopback index (TORCH_INDEX_URL), and the tiny random model in the official layout,
served as the hub (HF_ENDPOINT), in place of FunAudioLLM/CosyVoice-300M-SFT's weights. Everything
else is the production recipe: the tokenizer vocabulary and its hash, convert and prune, stripping
the text normaliser's libraries, and the build-time self-test. The random weights speak noise, so
the audio is checked for its form (rate, length, energy), not by ear.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from function.local import REPO, free_port
from loadtest.containers import Container, build, podman
from tests.audio_checks import decode

COSYVOICE_RATE = 22_050


@pytest.fixture(scope="module")
def cosyvoice_image() -> str:
    state = REPO / "build" / "image"
    state.mkdir(parents=True, exist_ok=True)
    sources = subprocess.Popen(
        [sys.executable, "-m", "tests.image.model_sources", str(free_port())],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=(state / "model_sources.log").open("w"),
        text=True,
    )
    try:
        build_args = sources.stdout.readline().split()  # once the wheels and the model are ready
        assert build_args, "tests/image/model_sources.py exited before serving"
        # The build's RUN steps share the host's network, to reach the stand-ins on loopback.
        return build("cosyvoice", "--network=host", *build_args)
    finally:
        sources.terminate()
        sources.wait(timeout=30)


@pytest.fixture(scope="module")
def cosyvoice(cosyvoice_image: str) -> Iterator[Container]:
    container = Container(cosyvoice_image)
    container.wait_healthy()
    yield container
    container.remove()


def test_the_image_bakes_the_converted_model_only(cosyvoice: Container) -> None:
    listing = cosyvoice.exec("ls", "/opt/models/cosyvoice-300m-sft").stdout.split()
    assert "manifest.json" in listing and "multilingual.tiktoken" in listing
    assert not [name for name in listing if name.endswith(".pt")]  # the pickles are dropped
    assert cosyvoice.exec("ls", "/opt/venv/bin/pip").returncode != 0  # nothing to install with


def test_cosyvoice_speaks_mandarin_from_the_container(cosyvoice: Container) -> None:
    health = requests.get(f"{cosyvoice.url}/healthz", timeout=5).json()
    assert health["engines"] == [{"name": "cosyvoice", "loaded": False}]
    response = requests.post(
        f"{cosyvoice.url}/synthesize?response=audio",
        json={"text": "今天天气很好。", "format": "wav"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    assert int(response.headers["X-Audio-Sample-Rate"]) == COSYVOICE_RATE
    audio = decode(response.content)
    assert audio.sample_rate == COSYVOICE_RATE and audio.duration_s > 0.1 and audio.rms > 0


def test_the_cosyvoice_image_size(cosyvoice_image: str) -> None:
    """Printed for the closing note; bounded so that an accidental CUDA torch (GBs) fails."""
    (inspected,) = json.loads(podman("image", "inspect", cosyvoice_image).stdout)
    print(f"{cosyvoice_image}: {inspected['Size'] / 1e6:.0f} MB")
    assert inspected["Size"] < 2_000_000_000
