"""The CosyVoice-300M-SFT runtime: model directory -> modules, and text -> 22050 Hz samples.

Loading reads ``cosyvoice.yaml`` for the sizes (``hparams.py``), builds each module without
initialising it and assigns the checkpoint's memory-mapped tensors (``weights.py``). Synthesis
is upstream's ``inference_sft`` without streaming: normalise and split the text
(``frontend.py``), then for each piece: text ids -> LLM speech tokens -> flow mel -> HiFT wave.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from function.engines.base import EngineLoadError
from function.engines.cosyvoice.hparams import Node, load_hparams
from function.engines.cosyvoice.llm import TransformerLM
from function.engines.cosyvoice.sampling import SamplingParams
from function.engines.cosyvoice.transformer import ConformerEncoder, TransformerEncoder
from function.engines.cosyvoice.weights import build, load_state

SUPPORTED_TOKENIZER = "whisper.tokenizer.get_tokenizer"
# Upstream's TransformerLM arguments that only matter for training.
_TRAINING_ONLY = ("length_normalized_loss", "lsm_weight", "sampling")


def _node(hparams: dict[str, Any], key: str) -> Node:
    node = hparams.get(key)
    if not isinstance(node, Node):
        raise EngineLoadError(f"cosyvoice.yaml has no {key!r} model")
    return node


def _encoder_kwargs(node: Node) -> dict[str, Any]:
    return dict(node.kwargs)


def llm_factory(hparams: dict[str, Any]) -> tuple[Callable[[], TransformerLM], SamplingParams]:
    """A constructor for the yaml's TransformerLM, and its sampling parameters."""
    node = _node(hparams, "llm")
    kwargs = {k: v for k, v in node.kwargs.items() if k not in _TRAINING_ONLY}
    text_encoder = _node(node.kwargs, "text_encoder")
    decoder = _node(node.kwargs, "llm")
    sampling = node.kwargs.get("sampling")
    params = SamplingParams(**sampling.kwargs) if isinstance(sampling, Node) else SamplingParams()

    def factory() -> TransformerLM:
        return TransformerLM(
            **{
                **kwargs,
                "text_encoder": ConformerEncoder(**_encoder_kwargs(text_encoder)),
                "llm": TransformerEncoder(**_encoder_kwargs(decoder)),
            }
        )

    return factory, params


def load_llm(model_dir: Path) -> TransformerLM:
    """The LLM of ``model_dir`` (official .pt or converted), loaded strictly."""
    factory, _ = llm_factory(load_hparams(model_dir / "cosyvoice.yaml"))
    return build(factory, load_state(model_dir, "llm"), "llm")
