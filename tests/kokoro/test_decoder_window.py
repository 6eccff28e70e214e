"""loadtest/kokoro_decoder_window.py's claims, on the real static model: split in two, the model
gives its own audio bit for bit, and a window of the frames that sound is shorter but quieter
(docs/kokoro.md, "Tried for the 0.3 s, not kept")."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from function.engines.kokoro import KokoroEngine
from loadtest.kokoro_decoder_window import Split


def test_the_split_model_is_the_model_and_a_window_of_its_sound_is_quieter(kokoro_dir: Path) -> None:
    engine = KokoroEngine(kokoro_dir, threads=1, static=True)
    engine.load()
    row = Split(engine).measure("春天来了，", "zf_xiaobei", 6, 10, 1)
    assert row["split_max_diff"] == 0.0
    start, end = row["window"]
    assert 0 < start < end < row["frames"] and row["kept"] < 0.8  # the silent frames are left out
    change = np.subtract(row["loudness_window_db"], row["loudness_whole_db"])
    assert np.median(change) < -1.0  # measured -3.8 dB: the norms' statistics moved
