"""The CosyVoice-300M-SFT runtime: model directory -> modules, and text -> 22050 Hz samples.

Loading reads ``cosyvoice.yaml`` for the sizes (``hparams.py``), builds each module without
initialising it and assigns the checkpoint's memory-mapped tensors (``weights.py``). Synthesis
is upstream's ``inference_sft`` without streaming: ``pieces`` normalises and splits the text
(``frontend.py``), then for each piece: text ids -> LLM speech tokens -> flow mel -> HiFT wave.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from function.engines.base import EngineLoadError
from function.engines.cosyvoice import flow, hift
from function.engines.cosyvoice.frontend import normalize
from function.engines.cosyvoice.hparams import Node, load_hparams
from function.engines.cosyvoice.llm import TransformerLM
from function.engines.cosyvoice.options import training_only
from function.engines.cosyvoice.precision import PRECISIONS, flow_in_bf16
from function.engines.cosyvoice.sampling import SamplingParams
from function.engines.cosyvoice.tokenizer import VOCAB_FILE, TextTokenizer
from function.engines.cosyvoice.transformer import ConformerEncoder, TransformerEncoder
from function.engines.cosyvoice.weights import build, load_speakers, load_state
from function.engines.cosyvoice.wetext import GRAMMAR_DIR, LazyWeText

SUPPORTED_TOKENIZER = "whisper.tokenizer.get_tokenizer"


def _cfm(cfm_params: dict[str, Any] | None = None, **kwargs: Any) -> flow.ConditionalCFM:
    # Upstream passes the solver settings as an omegaconf DictConfig; ours takes them as arguments.
    return flow.ConditionalCFM(**kwargs, **(cfm_params or {}))


# Upstream classes named in cosyvoice.yaml -> ours.
_CLASSES: dict[str, Callable[..., Any]] = {
    "cosyvoice.transformer.encoder.ConformerEncoder": ConformerEncoder,
    "cosyvoice.transformer.encoder.TransformerEncoder": TransformerEncoder,
    "cosyvoice.llm.llm.TransformerLM": TransformerLM,
    "cosyvoice.flow.flow.MaskedDiffWithXvec": flow.MaskedDiffWithXvec,
    "cosyvoice.flow.length_regulator.InterpolateRegulator": flow.InterpolateRegulator,
    "cosyvoice.flow.flow_matching.ConditionalCFM": _cfm,
    "cosyvoice.flow.decoder.ConditionalDecoder": flow.ConditionalDecoder,
    "omegaconf.DictConfig": lambda content: dict(content),
    "cosyvoice.hifigan.generator.HiFTGenerator": hift.HiFTGenerator,
    "cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor": hift.ConvRNNF0Predictor,
}


def construct(value: Any) -> Any:
    """Build the module tree a ``!new:`` node describes, with this runtime's classes."""
    if isinstance(value, Node):
        if value.kind != "new" or value.target not in _CLASSES:
            raise EngineLoadError(f"cosyvoice.yaml: unsupported {value.kind}:{value.target}")
        # Options only training reads are passed as they are, never built (e.g. a sampler).
        skipped = training_only(value.target.rpartition(".")[2])
        kwargs = {k: v if k in skipped else construct(v) for k, v in value.kwargs.items()}
        return _CLASSES[value.target](*[construct(v) for v in value.args], **kwargs)
    if isinstance(value, dict):
        return {k: construct(v) for k, v in value.items()}
    if isinstance(value, list):
        return [construct(v) for v in value]
    return value


def _node(hparams: dict[str, Any], key: str) -> Node:
    node = hparams.get(key)
    if not isinstance(node, Node):
        raise EngineLoadError(f"cosyvoice.yaml has no {key!r} model")
    return node


def sampling_params(hparams: dict[str, Any]) -> SamplingParams:
    """The yaml's ras_sampling arguments (upstream's defaults when the yaml predates them)."""
    sampling = _node(hparams, "llm").kwargs.get("sampling")
    return SamplingParams(**sampling.kwargs) if isinstance(sampling, Node) else SamplingParams()


def load_llm(model_dir: Path, hparams: dict[str, Any] | None = None) -> TransformerLM:
    """The LLM of ``model_dir`` (official .pt or converted), loaded strictly."""
    hparams = hparams or load_hparams(model_dir / "cosyvoice.yaml")
    node = _node(hparams, "llm")
    return build(lambda: construct(node), load_state(model_dir, "llm"), "llm")


def _with_precision(llm: TransformerLM, precision: str) -> TransformerLM:
    """Faster, non-parity modes of the LLM: bf16 weights, or int8 dynamic quantisation."""
    if precision == "bf16":
        return llm.to(torch.bfloat16)
    if precision in ("int8", "fast"):
        # Only the decoder-only LM: it runs once per speech token, the rest once per sentence.
        # In place: the default deep-copies the whole fp32 LM into anonymous memory first
        # (+0.8 GB of peak RSS at full size) only to replace its linear layers.
        torch.ao.quantization.quantize_dynamic(llm.llm, {nn.Linear}, dtype=torch.qint8, inplace=True)
        return llm
    return llm


@dataclass
class CosyVoiceRuntime:
    tokenizer: TextTokenizer
    llm: TransformerLM
    flow: nn.Module
    hift: nn.Module
    speakers: dict[str, torch.Tensor]
    sampling: SamplingParams
    sample_rate: int
    # Upstream's WeTextProcessing normalisers when installed and built (``convert``), else None.
    wetext: LazyWeText | None = None
    flow_bf16: bool = False

    def text_ids(self, piece: str) -> torch.Tensor:
        return torch.tensor([self.tokenizer.encode(piece)], dtype=torch.int32)

    def speech_tokens(self, piece: str, speaker: torch.Tensor) -> list[int]:
        return self.llm.generate(self.text_ids(piece), speaker, sampling=self.sampling)

    @torch.inference_mode()
    def token2wav(self, tokens: list[int], speaker: torch.Tensor, speed: float) -> torch.Tensor:
        """Speech tokens -> mel (flow) -> samples (HiFT); upstream's non-streaming token2wav."""
        token_ids = torch.tensor([tokens], dtype=torch.int32)
        if self.flow_bf16:
            # Native bf16 matrix products (AVX512-BF16, AMX): ~1.9x faster flow, not parity.
            with torch.autocast("cpu", dtype=torch.bfloat16):
                mel = self.flow.inference(token_ids, speaker).float()
        else:
            mel = self.flow.inference(token_ids, speaker)
        if speed != 1.0:
            # Upstream's speed control: stretch the mel in time before the vocoder.
            mel = F.interpolate(mel, size=int(mel.shape[2] / speed), mode="linear")
        return self.hift.inference(mel)[0]

    def pieces(self, text: str) -> list[str]:
        """Text -> normalised pieces, as upstream's ``inference_sft`` splits it."""
        return normalize(text, self.tokenizer.encode, self.wetext.get() if self.wetext else None)

    def synthesize(self, piece: str, voice: str, speed: float, seed: int) -> np.ndarray:
        """One normalised piece -> float32 samples; the same arguments always give the same samples."""
        speaker = self.speakers[voice]
        # Upstream draws every random number (sampling, flow noise, HiFT's source) from torch's
        # global generator; seeding it makes the output a function of the input.
        torch.manual_seed(seed)
        tokens = self.speech_tokens(piece, speaker)
        if not tokens:
            return np.zeros(0, dtype=np.float32)
        return self.token2wav(tokens, speaker, speed).float().numpy()


def load_runtime(model_dir: Path, threads: int | None = None, precision: str = "fp32") -> CosyVoiceRuntime:
    """Everything synthesis needs from ``model_dir``; ``precision`` other than fp32 is not parity."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}")
    if threads:
        torch.set_num_threads(threads)
    try:
        hparams = load_hparams(model_dir / "cosyvoice.yaml")
    except OSError as exc:
        raise EngineLoadError(f"cannot read {model_dir / 'cosyvoice.yaml'}: {exc}") from exc
    tokenizer_node = hparams.get("get_tokenizer")
    if not isinstance(tokenizer_node, Node) or tokenizer_node.target != SUPPORTED_TOKENIZER:
        raise EngineLoadError(f"cosyvoice.yaml: get_tokenizer must be {SUPPORTED_TOKENIZER} (a v1 model)")
    vocab = model_dir / VOCAB_FILE
    if not vocab.is_file():
        raise EngineLoadError(f"missing {vocab} (whisper's multilingual.tiktoken)")
    # Read in a thread while the weights load: it is ready when the first request needs it.
    wetext = LazyWeText(model_dir / GRAMMAR_DIR)
    tokenizer = TextTokenizer(vocab, num_languages=int(tokenizer_node.kwargs.get("num_languages", 99)))
    llm = _with_precision(load_llm(model_dir, hparams), precision)
    flow_model = build(lambda: construct(_node(hparams, "flow")), load_state(model_dir, "flow"), "flow")
    vocoder = build(lambda: construct(_node(hparams, "hift")), load_state(model_dir, "hift"), "hift")
    return CosyVoiceRuntime(
        tokenizer=tokenizer,
        llm=llm,
        flow=flow_model,
        hift=vocoder,
        speakers=load_speakers(model_dir),
        sampling=sampling_params(hparams),
        sample_rate=int(hparams.get("sample_rate", 22050)),
        wetext=wetext,
        flow_bf16=flow_in_bf16(precision),
    )
