"""The deployment's engines, in ``TTS_ENGINES`` order: each built from the settings on first use
(metadata only), loaded by the first request that needs its audio (the cold start), then kept
warm for the life of the instance and never reloaded.

An engine that cannot even be built (a model directory missing from the image) is reported by
the health check and skipped by routing; the others keep serving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from function.config import EngineName, Settings
from function.engines.base import Engine, EngineLoadError, Voice
from function.logs import fields

log = logging.getLogger(__name__)


def build_engine(name: EngineName, settings: Settings) -> Engine:
    """One engine, constructed cheaply (metadata only; loading is ``Engine.ensure_loaded``)."""
    if name == "cosyvoice":
        from function.engines.cosyvoice import CosyVoiceEngine

        return CosyVoiceEngine(
            model_dir=settings.model_dir, threads=settings.threads, precision=settings.cosyvoice_precision
        )
    if name == "kokoro":
        from function.engines.kokoro import KokoroEngine

        return KokoroEngine(model_dir=settings.kokoro_dir, threads=settings.threads)
    from function.engines.hibari import HibariEngine

    return HibariEngine(threads=settings.threads)


@dataclass(frozen=True)
class VoiceEntry:
    engine: Engine
    voice: Voice


class Engines:
    """The configured engines and their voices."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = settings.engines
        self._built: dict[str, Engine] = {}
        self._unavailable: dict[str, str] = {}
        # Every request routes over the voices; once every engine is built they cannot change
        # (nothing downloads at run time), so the list is kept instead of re-read per request.
        self._voices: list[VoiceEntry] | None = None

    def get(self, name: str) -> Engine:
        """The engine ``name``, built on first use; EngineLoadError when it cannot be built."""
        if name in self._built:
            return self._built[name]
        if name not in self.names:
            raise KeyError(name)
        try:
            engine = build_engine(name, self.settings)  # type: ignore[arg-type]
            if not engine.voices():
                raise EngineLoadError("it has no voices")
        except (OSError, ValueError, ImportError, EngineLoadError) as exc:
            # Not cached: a model directory mounted late, or an image fixed in place, recovers.
            why = f"engine {name!r} is unavailable: {exc}"
            if self._unavailable.get(name) != why:
                log.error(why, extra=fields(engine=name))
            self._unavailable[name] = why
            raise EngineLoadError(why) from exc
        self._unavailable.pop(name, None)
        self._built[name] = engine
        return engine

    def available(self) -> list[Engine]:
        """The engines that could be built, in the configured order."""
        engines = []
        for name in self.names:
            try:
                engines.append(self.get(name))
            except EngineLoadError:
                continue
        return engines

    def unavailable(self) -> dict[str, str]:
        """Engine name -> why it could not be built (as of the last attempt)."""
        self.available()
        return dict(self._unavailable)

    def voices(self) -> list[VoiceEntry]:
        """Every voice of every available engine, in engine order; a voice id or alias taken by an
        earlier engine stays with it."""
        if self._voices is not None:
            return self._voices
        entries: list[VoiceEntry] = []
        taken: set[str] = set()
        for engine in self.available():
            for voice in engine.voices():
                names = {n.lower() for n in (voice.id, *voice.aliases)}
                if names & taken:
                    continue
                taken |= names
                entries.append(VoiceEntry(engine, voice))
        if len(self._built) == len(self.names):
            self._voices = entries
        return entries

    def health(self) -> list[dict[str, object]]:
        """Each configured engine's state, without building or loading anything new. A failure
        already met is named (``error``) without its cause: paths go to the log, not to callers."""
        states: list[dict[str, object]] = []
        for name in self.names:
            engine = self._built.get(name)
            state: dict[str, object] = {"name": name, "loaded": engine is not None and engine.is_loaded}
            if name in self._unavailable:
                state["error"] = "cannot be built (the cause is in the service log)"
            elif engine is not None and engine.load_error is not None:
                state["error"] = "failed to load (the cause is in the service log)"
            states.append(state)
        return states
