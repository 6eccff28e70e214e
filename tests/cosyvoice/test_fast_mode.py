"""The ``fast`` precision's flow and HiFT (bfloat16) against fp32 on the tiny model.

The weights are cast whatever the CPU (bfloat16 runs everywhere, natively or not), so the
arithmetic ``fast`` runs on a CPU with native bf16 is checked on any machine. The bounds are the
documented difference (docs/cosyvoice.md, "Speed and memory on CPU") on the tiny model, with room.
"""

from __future__ import annotations

from pathlib import Path

import torch

from function.engines.cosyvoice.runtime import decoders_in, load_runtime
from loadtest.bench_cosyvoice import decoder_difference


def test_bf16_flow_and_hift_stay_near_fp32(tiny_model_dir: Path) -> None:
    reference = load_runtime(tiny_model_dir, threads=1)
    candidate = load_runtime(tiny_model_dir, threads=1)
    decoders_in(candidate.flow, candidate.hift, torch.bfloat16)
    assert candidate.flow.decoder.estimator.dtype == torch.bfloat16
    embedding = reference.speakers["英文女"]
    speech = torch.randint(0, 4096, (1, 60), generator=torch.Generator().manual_seed(1), dtype=torch.int32)
    diff = decoder_difference(reference, candidate, speech, embedding)
    # It differs (bf16 really ran) and stays close: mel within a small fraction of its range,
    # the waveform's error far under the waveform itself.
    assert 0 < diff["mel_max_abs_diff"] < 0.2 and diff["mel_rms_diff"] < 0.05
    assert 0 < diff["wave_rms_diff"] < 0.05 * diff["wave_rms"]
