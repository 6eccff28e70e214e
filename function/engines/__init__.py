"""Engine selection. Each engine module is imported only when selected, so its heavy
dependencies (onnxruntime, torch) never load in a process that does not use them."""

from __future__ import annotations

from function.config import Settings
from function.engines.base import Engine


def create_engine(settings: Settings) -> Engine:
    """The configured engine, constructed cheaply (metadata only; ``load()`` is separate)."""
    if settings.engine == "cosyvoice":
        from function.engines.cosyvoice import CosyVoiceEngine

        return CosyVoiceEngine(
            model_dir=settings.model_dir, threads=settings.threads, precision=settings.cosyvoice_precision
        )
    from function.engines.hibari import HibariEngine

    return HibariEngine(threads=settings.threads)
