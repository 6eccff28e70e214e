"""Dropping the pages of memory-mapped weights: RSS goes down, the values stay; never anonymous memory."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from function.engines.cosyvoice.pages import FilePages


def resident_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_file_backed_pages_are_dropped_and_read_again(tmp_path: Path) -> None:
    weights = torch.randn(16, 1024, 1024, generator=torch.Generator().manual_seed(0))  # 64 MiB
    save_file({"w": weights}, str(tmp_path / "w.safetensors"))
    mapped = load_file(tmp_path / "w.safetensors")["w"]
    assert torch.equal(mapped, weights)  # every page read: resident
    pages = FilePages([mapped])
    assert pages.bytes > 60 * 2**20
    before = resident_kb()
    pages.release()
    assert before - resident_kb() > 50 * 1024
    assert torch.equal(mapped, weights)  # read again from the file


def test_anonymous_memory_is_never_dropped() -> None:
    weights = torch.randn(4, 1024, 1024, generator=torch.Generator().manual_seed(0))
    copy = weights.clone()
    pages = FilePages([weights])
    assert pages.spans == [] and pages.bytes == 0
    pages.release()
    assert torch.equal(weights, copy)
