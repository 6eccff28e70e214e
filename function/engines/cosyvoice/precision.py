"""The numeric precisions the CosyVoice runtime can run its LLM at: the one list, as a type.

fp32 is upstream parity; bf16 and int8 (the LLM only) are faster and sound slightly different.
"""

from __future__ import annotations

from typing import Literal, get_args

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
