"""The default image (hibari + Kokoro), built once per session, and its containers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from loadtest.containers import Container, build

ContainerFactory = Callable[..., Container]


@pytest.fixture(scope="session")
def image() -> str:
    return build("hibari,kokoro")


@pytest.fixture(scope="session")
def start_container(image: str) -> Iterator[ContainerFactory]:
    """Start a container of the image (target, env) and wait until it serves; all removed at the end."""
    started: list[Container] = []

    def start(target: str = "synthesize", **env: str) -> Container:
        container = Container(image, target, **env)
        started.append(container)
        container.wait_healthy()
        return container

    yield start
    for container in started:
        container.remove()
