"""Another revision of this repository, checked out beside it for a benchmark's baseline."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def worktree(ref: str, path: Path) -> Iterator[Path]:
    """Git ``ref`` checked out (detached) at ``path`` for the duration; removed again however the
    benchmark ends."""
    git = ["git", "-C", str(REPO), "worktree"]
    subprocess.run([*git, "add", "--detach", str(path), ref], check=True)
    try:
        yield path
    finally:
        subprocess.run([*git, "remove", "--force", str(path)], check=True)
