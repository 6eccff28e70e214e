"""Why Kokoro's static model has 7-bit weights, shown on this onnxruntime itself: on a CPU without
VNNI one ``QLinearConv`` at its worst case saturates with 8-bit weights and is exact with 7-bit
ones. This machine has VNNI, so the CPU without it is qemu's user-mode Haswell (AVX2, no VNNI;
Debian's qemu-user, which ``make test`` installs) running this same Python and onnxruntime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from loadtest.without_vnni import EXACT, saturation_probe

REPO = Path(__file__).resolve().parents[2]


def test_without_vnni_8_bit_weights_saturate_and_7_bit_ones_do_not() -> None:
    done = subprocess.run(
        ["qemu-x86_64", "-cpu", "Haswell-noTSX", sys.executable, "loadtest/without_vnni.py", "--kernel"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    emulated = json.loads(done.stdout.splitlines()[-1])
    assert emulated["7"] == [EXACT]
    assert max(emulated["8"]) < 0.6 * EXACT  # pair sums clipped at 32767: about half the total
    assert saturation_probe(64) == [EXACT]  # and natively, on any CPU
