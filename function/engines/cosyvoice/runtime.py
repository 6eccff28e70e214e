"""The CosyVoice-300M-SFT runtime: model directory -> modules, and text -> 22050 Hz samples.

Loading reads ``cosyvoice.yaml`` for the sizes (``hparams.py``), builds each module without
initialising it and assigns the checkpoint's memory-mapped tensors (``weights.py``). Synthesis
is upstream's ``inference_sft``: ``pieces`` normalises and splits the text (``frontend.py``),
then for each piece: text ids -> LLM speech tokens -> flow mel -> HiFT wave; whole
(``synthesize``), or every 100 tokens as upstream's stream mode (``synthesize_streamed``,
``streamed.py``).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
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
from function.engines.cosyvoice.int8 import INT8_NAME, load_int8, to_int8
from function.engines.cosyvoice.llm import TransformerLM
from function.engines.cosyvoice.options import training_only
from function.engines.cosyvoice.pages import FilePages, file_mappings
from function.engines.cosyvoice.precision import PRECISIONS, decoders_in_bf16
from function.engines.cosyvoice.sampling import SamplingParams
from function.engines.cosyvoice.streamed import StreamedToken2Wav
from function.engines.cosyvoice.tokenizer import VOCAB_FILE, TextTokenizer
from function.engines.cosyvoice.transformer import ConformerEncoder, TransformerEncoder
from function.engines.cosyvoice.weights import (
    BF16_NAME,
    assign,
    build,
    derived_state,
    load_speakers,
    load_state,
)
from function.engines.cosyvoice.wetext import GRAMMAR_DIR, LazyWeText

SUPPORTED_TOKENIZER = "whisper.tokenizer.get_tokenizer"
# The LM's projected position keys for its first ``llm.POS_BLOCK`` distances, fp32 and int8 LM's
# (``TransformerLM.position_keys``), computed by ``convert``.
POSITIONS_NAME = "llm-positions"


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


def _with_precision(llm: TransformerLM, precision: str, model_dir: Path) -> TransformerLM:
    """Faster, non-parity modes of the LLM: bf16 weights, or the int8 LM (``int8.py``); in every
    mode, the position keys projected (``TransformerLM.prepare``). What ``convert`` computed
    (the int8 LM, the position keys) is mapped from its files, else computed here."""
    if precision == "bf16":
        # Tensor by tensor, dropping each one's fp32 file pages once cast: casting all at once
        # holds the 1.1 GB of fp32 pages and the bf16 copy together (peak RSS 2.1 GB at full size).
        mappings = file_mappings()
        for param in llm.parameters():
            fp32 = FilePages([param.data], mappings)
            param.data = param.data.to(torch.bfloat16)
            fp32.release()
        llm.to(torch.bfloat16)  # the buffers
        llm.prepare()
        return llm
    int8 = precision in ("int8", "fast")
    if int8:
        state = derived_state(model_dir, INT8_NAME)
        if state is None:
            to_int8(llm)
        else:
            load_int8(llm, state)
    keys = derived_state(model_dir, POSITIONS_NAME)
    if keys is None:
        llm.prepare()
    else:
        try:
            llm.use_position_keys(keys["int8" if int8 else "fp32"])
        except (KeyError, ValueError) as exc:
            raise EngineLoadError(f"{POSITIONS_NAME}: {exc} (run convert again)") from exc
    return llm


def load_decoders(model_dir: Path, hparams: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """The flow and HiFT of ``model_dir`` (official .pt or converted), loaded strictly."""
    flow_model = build(lambda: construct(_node(hparams, "flow")), load_state(model_dir, "flow"), "flow")
    vocoder = build(lambda: construct(_node(hparams, "hift")), load_state(model_dir, "hift"), "hift")
    return flow_model, vocoder


def bf16_modules(flow_model: nn.Module, vocoder: nn.Module) -> dict[str, nn.Module]:
    """What ``fast`` runs in bfloat16, by name: the flow's U-Net, run 10 times per sentence (its
    encoder, run once, stays fp32), and HiFT's convolutions."""
    convolutions = {f"hift.{name}": module for name, module in vocoder.convolutions().items()}
    return {"flow.decoder.estimator": flow_model.decoder.estimator, **convolutions}


def decoders_in(
    flow_model: nn.Module,
    vocoder: nn.Module,
    dtype: torch.dtype,
    state: dict[str, torch.Tensor] | None = None,
) -> None:
    """Cast once (rather than autocast per call) ``bf16_modules``; or, given ``state`` (the
    ``dtype`` tensors ``convert`` wrote, ``prefixed_state``), take those: the same values, mapped
    from the file instead of cast at load. bfloat16 is not parity."""
    modules = bf16_modules(flow_model, vocoder)
    if state is None:
        for module in modules.values():
            module.to(dtype)
    elif any(tensor.dtype != dtype for tensor in state.values()):
        raise EngineLoadError(f"{BF16_NAME}: not all {dtype} (run convert again)")
    else:
        assign(modules, state, BF16_NAME)
    attentions = [m for m in flow_model.decoder.estimator.modules() if isinstance(m, flow.Attention)]
    # Fusing copies q, k and v's weights: the originals' file pages, read once, are dropped.
    unfused = FilePages(w for a in attentions for w in (a.to_q.weight, a.to_k.weight, a.to_v.weight))
    for attention in attentions:
        attention.fuse_projections()
    unfused.release()


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
    # The text encoder's file-backed pages, dropped after each sentence's tokens (``pages.py``).
    text_encoder_pages: FilePages | None = None

    def text_ids(self, piece: str) -> torch.Tensor:
        return torch.tensor([self.tokenizer.encode(piece)], dtype=torch.int32)

    def speech_tokens(
        self, piece: str, speaker: torch.Tensor, generator: torch.Generator | None = None
    ) -> Iterator[int]:
        """The LLM's tokens for ``piece`` as it samples them (from ``generator``, else torch's
        global generator, as upstream)."""
        try:
            yield from self.llm.tokens(self.text_ids(piece), speaker, generator, sampling=self.sampling)
        finally:
            if self.text_encoder_pages is not None:
                self.text_encoder_pages.release()

    @torch.inference_mode()
    def token2wav(self, tokens: list[int], speaker: torch.Tensor, speed: float) -> torch.Tensor:
        """Speech tokens -> mel (flow) -> samples (HiFT); upstream's non-streaming token2wav."""
        mel = self.flow.inference(torch.tensor([tokens], dtype=torch.int32), speaker)
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
        tokens = list(self.speech_tokens(piece, speaker))
        if not tokens:
            return np.zeros(0, dtype=np.float32)
        return self.token2wav(tokens, speaker, speed).float().numpy()

    def synthesize_streamed(self, piece: str, voice: str, seed: int) -> Iterator[np.ndarray]:
        """One normalised piece -> float32 samples a hop at a time, as upstream's stream mode
        (``streamed.py``): the LLM and the hops interleaved, no thread. The LLM draws from a
        generator seeded as ``synthesize`` seeds the global one, so it samples the same tokens;
        flow and HiFT draw from their own (seeded from ``seed`` too: deterministic)."""
        speaker = self.speakers[voice]
        tokens = self.speech_tokens(piece, speaker, torch.Generator().manual_seed(seed))
        decoders = torch.Generator().manual_seed((seed + 1) % 2**64)
        for samples in StreamedToken2Wav(self.flow, self.hift, speaker, decoders).wave(tokens):
            yield samples.float().numpy()


def load_runtime(model_dir: Path, threads: int | None = None, precision: str = "fp32") -> CosyVoiceRuntime:
    """Everything synthesis needs from ``model_dir``; ``precision`` other than fp32 is not parity."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}")
    # What is imported by now (torch: ~170k objects) lives as long as the process. Frozen, it is
    # left out of the collector's full passes, which building ~2000 modules sets off: ~70 ms less
    # load on a 2 vCPU Zen 4 (docs/cosyvoice.md, "Ready").
    gc.freeze()
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
    llm = _with_precision(load_llm(model_dir, hparams), precision, model_dir)
    flow_model, vocoder = load_decoders(model_dir, hparams)
    if decoders_in_bf16(precision):
        decoders_in(flow_model, vocoder, torch.bfloat16, derived_state(model_dir, BF16_NAME))
    return CosyVoiceRuntime(
        tokenizer=tokenizer,
        llm=llm,
        flow=flow_model,
        hift=vocoder,
        speakers=load_speakers(model_dir),
        sampling=sampling_params(hparams),
        sample_rate=int(hparams.get("sample_rate", 22050)),
        wetext=wetext,
        text_encoder_pages=FilePages(llm.text_encoder.parameters()),
    )
