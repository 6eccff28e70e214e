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


# Where a word meets a pause, the durations and the sound disagree: Kokoro holds a phrase's last
# phoneme (and the punctuation after it) for frames it renders as near-silence, and a word after
# a pause sounds a frame or two before its first phoneme's frames (measured against the audio's
# own pauses, loadtest/mark_accuracy.py: word ends 110-310 ms late, starts 50-70 ms late). There
# the sound decides: 5 ms windows, quiet 35 dB under the chunk's loud level.
_WINDOW_S = 0.005
_QUIET_DB = -35.0
_MIN_PAUSE_S = 0.05  # a quiet run this long next to a word is a pause, not a stop consonant
_ONSET_SEARCH_S = 0.2  # how far before its first phoneme's frames a word's sound may begin


def fit_to_sound(words: list[TimedWord], audio: np.ndarray, sample_rate: int) -> list[TimedWord]:
    """``words`` (samples into ``audio``, in order, not overlapping) with the boundaries that touch
    a pause moved to where the sound stops and starts again; boundaries inside speech stay where
    the durations put them. Punctuation keeps its start, and ends where the next word now starts
    if that is earlier."""
    window = max(1, round(_WINDOW_S * sample_rate))
    count = len(audio) // window
    if not words or not count:
        return words
    power = (audio[: count * window].astype(np.float64) ** 2).reshape(count, window).mean(axis=1)
    loud = power >= np.percentile(power, 95) * 10 ** (_QUIET_DB / 10)
    pause = round(_MIN_PAUSE_S / _WINDOW_S)
    fitted: list[TimedWord] = []
    previous_end = 0  # in windows: no word starts before the one before it ends
    pending: list[int] = []  # punctuation since the last word: its frames are the pause itself
    for word in words:
        if not any(char.isalnum() for char in word.text):
            pending.append(len(fitted))
            fitted.append(word)
            previous_end = max(previous_end, word.start // window + 1)  # it keeps a window at least
            continue
        first, last = word.start // window, min(count, -(-word.end // window))
        start, end = word.start, word.end
        # The end: the word's own frames close with a pause (its last phoneme held silent).
        sounding = np.flatnonzero(loud[first:last])
        if len(sounding) and last - (first + int(sounding[-1]) + 1) >= pause:
            end = (first + int(sounding[-1]) + 1) * window
        # The start: sounding when its frames begin, the sound having begun after a pause.
        if first < count and loud[first]:
            onset = first
            limit = max(previous_end, first - round(_ONSET_SEARCH_S / _WINDOW_S))
            while onset > limit and loud[onset - 1]:
                onset -= 1
            if onset > limit and onset - pause >= 0 and not loud[onset - pause : onset].any():
                start = onset * window
        for index in pending:
            mark = fitted[index]
            fitted[index] = TimedWord(mark.text, mark.start, max(mark.start + 1, min(mark.end, start)))
        pending = []
        fitted.append(TimedWord(word.text, start, max(start + 1, end)))
        previous_end = -(-fitted[-1].end // window)
    return fitted
