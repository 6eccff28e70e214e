"""Giving back the memory pages of weights that are read from a file and used once per sentence.

The weights are memory-mapped from the model files, so their resident pages count in the
process's RSS but are clean copies of the page cache: ``madvise(MADV_DONTNEED)`` drops them from
the process, and the next read maps them again from the page cache (no disk read while the file
stays cached). The LLM's text encoder (~0.3 GB at full size) runs once per sentence, before the
speech tokens; dropping its pages afterwards keeps them out of the peak, which comes later
(flow and HiFT), for ~0.05 s of page faults at its next use.

Only pages inside a file mapping are ever dropped: on anonymous memory (weights cast at load, a
checkpoint read into memory) ``MADV_DONTNEED`` would zero them, so such tensors are left alone.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Iterable
from pathlib import Path

import torch

MADV_DONTNEED = 4
PAGE = mmap.PAGESIZE


def file_mappings() -> list[tuple[int, int]]:
    """(start, end) of this process's mappings that are backed by a file (Linux; none elsewhere)."""
    spans = []
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # nothing is known to be file-backed, so nothing is ever dropped
        return spans
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            spans.append((start, end))
    return spans


class FilePages:
    """The whole pages of ``tensors`` that lie in file mappings, to drop on demand."""

    def __init__(
        self, tensors: Iterable[torch.Tensor], mappings: list[tuple[int, int]] | None = None
    ) -> None:
        """``mappings``: ``file_mappings()`` when the caller asks for many sets at once."""
        self.spans: list[tuple[int, int]] = []
        mappings = file_mappings() if mappings is None else mappings
        for tensor in tensors:
            start = tensor.data_ptr()
            end = start + tensor.numel() * tensor.element_size()
            if any(low <= start and end <= high for low, high in mappings):
                first, last = -(-start // PAGE) * PAGE, end // PAGE * PAGE
                if last > first:
                    self.spans.append((first, last - first))
        self._madvise = _libc_madvise() if self.spans else None

    @property
    def bytes(self) -> int:
        return sum(length for _, length in self.spans)

    def release(self) -> None:
        """Best effort: where the kernel refuses, the pages simply stay."""
        for start, length in self.spans:
            self._madvise(start, length, MADV_DONTNEED)


def _libc_madvise() -> ctypes._CFuncPtr:
    madvise = ctypes.CDLL(None).madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise
