"""When Kokoro says each word: the durations its predictor gives each phoneme, read out of the graph.

Kokoro's prosody predictor decides how many frames each input phoneme lasts (``pred_dur``: the
sigmoid sum, divided by the speed, rounded, at least 1) and the decoder renders exactly that many
frames, ``SAMPLES_PER_FRAME`` samples each. The export keeps that tensor inside the graph; the
build (``assets.py``) adds it as the model's second output, ``durations`` (``add_duration_output``:
an Identity node, nothing else in the graph changes, so the audio stays the same to the bit).
The engine then knows, for every phoneme, its first and last sample, and a word is its phonemes'
span (``word_spans``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from function.engines.base import TimedWord

DURATIONS = "durations"
# The int64 frame count per input position (the two 0 pads included), after speed and rounding.
_PRED_DUR = "/encoder/Cast_output_0"
# Kokoro's decoder: 24 kHz audio at 40 frames a second (an upsampling of 2 and a 300-sample iSTFT hop).
SAMPLES_PER_FRAME = 600


def add_duration_output(model: Any) -> None:
    """Add the predictor's per-phoneme frame counts to ``model`` (an ``onnx.ModelProto`` of the
    Kokoro v1.0 export, changed in place) as the output ``DURATIONS``. Build time only (onnx)."""
    from onnx import TensorProto, helper

    graph = model.graph
    if any(output.name == DURATIONS for output in graph.output):
        return
    producer = next((node for node in graph.node if _PRED_DUR in node.output), None)
    if producer is None or producer.op_type != "Cast":
        raise ValueError(f"kokoro timing: no {_PRED_DUR} (the predictor's durations) in this export")
    graph.node.append(helper.make_node("Identity", [_PRED_DUR], [DURATIONS], name="/marks/durations"))
    graph.output.append(helper.make_tensor_value_info(DURATIONS, TensorProto.INT64, [1, "positions"]))


def word_spans(
    tokens: str, durations: np.ndarray, words: list[tuple[str, str]], offset: int
) -> list[TimedWord]:
    """Each of ``words`` (its text and its phonemes, in the order ``tokens`` spells them) with the
    samples its phonemes last, counted from ``offset`` samples before the model's first output
    sample (what trimming cut, negative for what came before it). ``durations``: one frame count
    per input position, the 0 pads around ``tokens`` included. A word's span runs from its first
    phoneme's first sample to its last phoneme's last: the spaces and punctuation between words
    belong to neither."""
    frames = np.asarray(durations, dtype=np.int64).reshape(-1)
    ends = np.cumsum(frames) * SAMPLES_PER_FRAME - offset
    starts = ends - frames * SAMPLES_PER_FRAME
    # Positions of the spoken (non-blank) phonemes in the input, in order: position 0 is the pad.
    positions = [index + 1 for index, char in enumerate(tokens) if not char.isspace()]
    spans: list[TimedWord] = []
    cursor = 0
    for text, phonemes in words:
        count = sum(not char.isspace() for char in phonemes)
        if not count or cursor + count > len(positions):
            continue
        first, last = positions[cursor], positions[cursor + count - 1]
        cursor += count
        spans.append(TimedWord(text, int(starts[first]), int(ends[last])))
    return spans
