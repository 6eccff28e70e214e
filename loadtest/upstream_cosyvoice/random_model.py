"""A random CosyVoice-300M-SFT built with upstream's own classes, in the official layout (the
parity tests' model, and the CosyVoice benchmark's at full size).

``YAML_TEMPLATE`` with ``FULL`` sizes is the real model's ``cosyvoice.yaml`` (the v1 300M
architecture: examples/libritts/cosyvoice/conf/cosyvoice.yaml in FunAudioLLM/CosyVoice); with
``TINY`` sizes it is shrunk: same tags, same structure, same text and speech vocabularies (so the
real tokenizer's ids fit). Upstream's modules are instantiated from it (``instantiate``, a
stand-in for hyperpyyaml that imports only what a node names) and their random weights
written as ``llm.pt``/``flow.pt``/``hift.pt`` state dicts; ``spk2info.pt`` holds the seven SFT
speakers as ``{name: {'embedding': tensor[1, 192]}}``.
"""

from __future__ import annotations

import importlib
import shutil
import string
from pathlib import Path
from typing import Any

import torch

from function.engines.cosyvoice.hparams import Node, load_hparams

SPEAKERS = ("中文女", "中文男", "日语男", "粤语女", "英文女", "英文男", "韩语女")

YAML_TEMPLATE = """\
# set random seed, so that you may reproduce your result.
__set_seed1: !apply:random.seed [1986]
__set_seed2: !apply:numpy.random.seed [1986]
__set_seed3: !apply:torch.manual_seed [1986]
__set_seed4: !apply:torch.cuda.manual_seed_all [1986]

# fixed params
sample_rate: 22050
text_encoder_input_size: $text_encoder_input_size
llm_input_size: $llm_size
llm_output_size: $llm_size
spk_embed_dim: 192

llm: !new:cosyvoice.llm.llm.TransformerLM
    text_encoder_input_size: !ref <text_encoder_input_size>
    llm_input_size: !ref <llm_input_size>
    llm_output_size: !ref <llm_output_size>
    text_token_size: 51866
    speech_token_size: 4096
    length_normalized_loss: True
    lsm_weight: 0
    spk_embed_dim: !ref <spk_embed_dim>
    text_encoder: !new:cosyvoice.transformer.encoder.ConformerEncoder
        input_size: !ref <text_encoder_input_size>
        output_size: $text_encoder_size
        attention_heads: $text_encoder_heads
        linear_units: $text_encoder_units
        num_blocks: $text_encoder_blocks
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0
        normalize_before: True
        input_layer: 'linear'
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        use_cnn_module: False
        macaron_style: False
        use_dynamic_chunk: False
        use_dynamic_left_chunk: False
        static_chunk_size: 1
    llm: !new:cosyvoice.transformer.encoder.TransformerEncoder
        input_size: !ref <llm_input_size>
        output_size: !ref <llm_output_size>
        attention_heads: $llm_heads
        linear_units: $llm_units
        num_blocks: $llm_blocks
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0
        input_layer: 'linear_legacy'
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        static_chunk_size: 1
    sampling: !name:cosyvoice.utils.common.ras_sampling
        top_p: 0.8
        top_k: 25
        win_size: 10
        tau_r: 0.1

flow: !new:cosyvoice.flow.flow.MaskedDiffWithXvec
    input_size: $flow_size
    output_size: 80
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: 4096
    input_frame_rate: $input_frame_rate
    only_mask_loss: True
    encoder: !new:cosyvoice.transformer.encoder.ConformerEncoder
        output_size: $flow_size
        attention_heads: $flow_heads
        linear_units: $flow_units
        num_blocks: $flow_blocks
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: True
        input_layer: 'linear'
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        input_size: $flow_size
        use_cnn_module: False
        macaron_style: False
    length_regulator: !new:cosyvoice.flow.length_regulator.InterpolateRegulator
        channels: 80
        sampling_ratios: [1, 1, 1, 1]
    decoder: !new:cosyvoice.flow.flow_matching.ConditionalCFM
        in_channels: 240
        n_spks: 1
        spk_emb_dim: 80
        cfm_params: !new:omegaconf.DictConfig
            content:
                sigma_min: 1e-06
                solver: 'euler'
                t_scheduler: 'cosine'
                training_cfg_rate: 0.2
                inference_cfg_rate: 0.7
                reg_loss_type: 'l1'
        estimator: !new:cosyvoice.flow.decoder.ConditionalDecoder
            in_channels: 320
            out_channels: 80
            channels: [$estimator_channels, $estimator_channels]
            dropout: 0
            attention_head_dim: $estimator_head_dim
            n_blocks: $estimator_blocks
            num_mid_blocks: $estimator_mid_blocks
            num_heads: $estimator_heads
            act_fn: 'gelu'

hift: !new:cosyvoice.hifigan.generator.HiFTGenerator
    in_channels: 80
    base_channels: $hift_channels
    nb_harmonics: 8
    sampling_rate: !ref <sample_rate>
    nsf_alpha: 0.1
    nsf_sigma: 0.003
    nsf_voiced_threshold: 10
    upsample_rates: [8, 8]
    upsample_kernel_sizes: [16, 16]
    istft_params:
        n_fft: 16
        hop_len: 4
    resblock_kernel_sizes: [3, 7, 11]
    resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    source_resblock_kernel_sizes: [7, 11]
    source_resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5]]
    lrelu_slope: 0.1
    audio_limit: 0.99
    f0_predictor: !new:cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor
        num_class: 1
        in_channels: 80
        cond_channels: $hift_channels

# processor functions
get_tokenizer: !name:whisper.tokenizer.get_tokenizer
    multilingual: True
    num_languages: 100
    language: 'en'
    task: 'transcribe'
allowed_special: 'all'
tokenize: !name:cosyvoice.dataset.processor.tokenize
    get_tokenizer: !ref <get_tokenizer>
    allowed_special: !ref <allowed_special>
feat_extractor: !name:matcha.utils.audio.mel_spectrogram
    n_fft: 1024
    num_mels: 80
    sampling_rate: !ref <sample_rate>
    hop_size: 256
    win_size: 1024
    fmin: 0
    fmax: 8000
    center: False
"""


# The real CosyVoice-300M sizes (the libritts recipe's cosyvoice.yaml), and a tiny shrink of them.
FULL = {
    "text_encoder_input_size": 512, "llm_size": 1024,
    "text_encoder_size": 1024, "text_encoder_heads": 16, "text_encoder_units": 4096, "text_encoder_blocks": 6,
    "llm_heads": 16, "llm_units": 4096, "llm_blocks": 14,
    "flow_size": 512, "flow_heads": 8, "flow_units": 2048, "flow_blocks": 6,
    "estimator_channels": 256, "estimator_head_dim": 64, "estimator_blocks": 4, "estimator_mid_blocks": 12,
    "estimator_heads": 8, "hift_channels": 512,
}  # fmt: skip
TINY = {
    "text_encoder_input_size": 32, "llm_size": 64,
    "text_encoder_size": 48, "text_encoder_heads": 4, "text_encoder_units": 96, "text_encoder_blocks": 2,
    "llm_heads": 4, "llm_units": 128, "llm_blocks": 3,
    "flow_size": 32, "flow_heads": 2, "flow_units": 64, "flow_blocks": 2,
    "estimator_channels": 32, "estimator_head_dim": 16, "estimator_blocks": 1, "estimator_mid_blocks": 1,
    "estimator_heads": 2, "hift_channels": 32,
}  # fmt: skip


def render_yaml(sizes: dict[str, int], frame_rate: int = 50) -> str:
    """The yaml for ``sizes``; ``frame_rate``: speech tokens per second (50 for the real 300M-SFT)."""
    return string.Template(YAML_TEMPLATE).substitute(sizes, input_frame_rate=frame_rate)


def instantiate(value: Any) -> Any:
    """Build upstream objects from a parsed ``!new:`` tree (what hyperpyyaml does for these keys)."""
    if isinstance(value, Node):
        module, _, name = value.target.rpartition(".")
        target = getattr(importlib.import_module(module), name)
        kwargs = {k: instantiate(v) for k, v in value.kwargs.items()}
        if value.kind == "name":
            return lambda *args, **more: target(*args, **kwargs, **more)
        return target(*[instantiate(v) for v in value.args], **kwargs)
    if isinstance(value, dict):
        return {k: instantiate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [instantiate(v) for v in value]
    return value


def whisper_vocab() -> Path:
    import whisper

    return Path(whisper.__file__).parent / "assets" / "multilingual.tiktoken"


def upstream_modules(model_dir: Path) -> dict[str, torch.nn.Module]:
    """Upstream's llm/flow/hift for ``model_dir``'s yaml, with its checkpoints loaded strictly."""
    from loadtest.upstream_cosyvoice import install_stubs

    install_stubs()
    hparams = load_hparams(model_dir / "cosyvoice.yaml")
    modules = {}
    for name in ("llm", "flow", "hift"):
        module = instantiate(hparams[name])
        state = torch.load(model_dir / f"{name}.pt", map_location="cpu", weights_only=True)
        module.load_state_dict(state, strict=True)
        modules[name] = module.eval()
    return modules


def build_tiny_model(
    model_dir: Path, seed: int = 0, sizes: dict[str, int] = TINY, frame_rate: int = 50
) -> Path:
    """Write a random model (tiny unless ``sizes`` says otherwise) in the official layout."""
    from loadtest.upstream_cosyvoice import install_stubs

    install_stubs()
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "cosyvoice.yaml").write_text(render_yaml(sizes, frame_rate), encoding="utf-8")
    hparams = load_hparams(model_dir / "cosyvoice.yaml")
    torch.manual_seed(seed)
    for name in ("llm", "flow", "hift"):
        module = instantiate(hparams[name])
        with torch.no_grad():
            for param in module.parameters():
                # Larger than the default init, so the tiny model's outputs are far from trivial.
                param.add_(torch.randn_like(param) * 0.05)
        torch.save(module.state_dict(), model_dir / f"{name}.pt")
    spk2info = {name: {"embedding": torch.randn(1, 192)} for name in SPEAKERS}
    torch.save(spk2info, model_dir / "spk2info.pt")
    shutil.copy(whisper_vocab(), model_dir / "multilingual.tiktoken")
    return model_dir
