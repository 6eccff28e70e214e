"""The process-wide engine: constructed on first use, loaded on the first request that needs
audio (the cold start), then kept for the life of the instance and never reloaded."""

from __future__ import annotations

import logging
import threading
import time

from function.config import get_settings
from function.engines import create_engine
from function.engines.base import Engine, EngineLoadError
from function.logs import fields

log = logging.getLogger(__name__)

_engine: Engine | None = None
_loaded = False
# Instances serve one request at a time; the lock only keeps a misconfigured multi-threaded
# server from loading the model twice.
_lock = threading.Lock()


def engine() -> Engine:
    """The engine's metadata (voices, sample rate, version); no model load."""
    global _engine
    with _lock:
        if _engine is None:
            settings = get_settings()
            try:
                _engine = create_engine(settings)
            except (OSError, ValueError) as exc:  # e.g. a missing or unreadable model directory
                raise EngineLoadError(f"engine {settings.engine!r} is unavailable: {exc}") from exc
        return _engine


def is_loaded() -> bool:
    return _loaded


def loaded_engine() -> tuple[Engine, float | None]:
    """The loaded engine, and the load time in ms when this call paid the cold start."""
    global _loaded
    current = engine()
    with _lock:
        if _loaded:
            return current, None
        started = time.perf_counter()
        try:
            current.load()
        except EngineLoadError:
            log.exception("model load failed", extra=fields(engine=current.name))
            raise
        load_ms = (time.perf_counter() - started) * 1000
        _loaded = True
    log.info(
        "model loaded",
        extra=fields(
            engine=current.name,
            model_version=current.model_version,
            load_ms=round(load_ms, 1),
            cold_start=True,
        ),
    )
    return current, load_ms
