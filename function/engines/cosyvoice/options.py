"""Upstream constructor options that change nothing at inference, in one table.

Our modules take upstream's constructor arguments, so an official ``cosyvoice.yaml`` builds them
unchanged. The options only training reads are dropped (``construct`` does not even build their
values); any other option this runtime does not know is refused, so a config it does not
implement fails loudly instead of being ignored.
"""

from __future__ import annotations

from collections.abc import Mapping

_ENCODER = frozenset(
    {
        "dropout_rate",
        "positional_dropout_rate",
        "attention_dropout_rate",
        "use_dynamic_chunk",
        "use_dynamic_left_chunk",
        "selfattention_layer_type",  # upstream: "no effect now, just for configure compatibility"
        "gradient_checkpointing",
        "positionwise_conv_kernel_size",
        "global_cmvn",
    }
)
# By class name (ours are upstream's).
TRAINING_ONLY: dict[str, frozenset[str]] = {
    "ConformerEncoder": _ENCODER,
    "TransformerEncoder": _ENCODER,
    # The sampling numbers are read from the yaml by ``runtime.sampling_params``.
    "TransformerLM": frozenset({"length_normalized_loss", "lsm_weight", "sampling"}),
    "ConditionalDecoder": frozenset({"dropout"}),
    "ConditionalCFM": frozenset({"sigma_min", "training_cfg_rate", "reg_loss_type"}),
    "MaskedDiffWithXvec": frozenset({"output_type", "only_mask_loss", "decoder_conf", "mel_feat_conf"}),
}


def training_only(class_name: str) -> frozenset[str]:
    return TRAINING_ONLY.get(class_name, frozenset())


def drop_training_only(class_name: str, options: Mapping[str, object]) -> None:
    """Accept the ``options`` that only training reads; TypeError for any other."""
    unknown = set(options) - training_only(class_name)
    if unknown:
        raise TypeError(f"unsupported {class_name} options: {sorted(unknown)}")
