"""The numeric precisions the CosyVoice runtime can run at: the one list, as a type.

fp32 is upstream parity; the others are faster and sound slightly different:

* ``bf16``: the LLM in bfloat16;
* ``int8``: the LLM's decoder-only transformer and output layer with int8 weights (one scale per
  row) and bfloat16 activations (``int8.py``);
* ``fast``: the int8 LLM, and the flow's U-Net and HiFT's convolutions with bfloat16 weights
  where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere they stay fp32, and
  ``fast`` is ``int8``. The flow's encoder, the F0 predictor, the source and the iSTFT stay fp32.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, get_args

Precision = Literal["fp32", "bf16", "int8", "fast"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def native_bf16() -> bool:
    """The CPU multiplies bfloat16 natively (Linux: /proc/cpuinfo's flags)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return bool(NATIVE_BF16_FLAGS & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return False


def decoders_in_bf16(precision: str) -> bool:
    """The flow's U-Net and HiFT's convolutions run in bfloat16."""
    return precision == "fast" and native_bf16()


# The LLM's label in the int8 precisions. It was ``int8`` while fbgemm's dynamic quantisation
# (per-tensor weight scale, 8-bit activations) ran it: other arithmetic, so another label.
LLM_INT8 = "llm-int8"


def label(precision: str) -> str:
    """What actually runs: part of the model version, so other arithmetic gets other cache keys."""
    if precision == "int8" or (precision == "fast" and not native_bf16()):
        return LLM_INT8
    if precision == "fast":
        return f"{LLM_INT8}-flowbf16-hiftbf16"
    return precision
