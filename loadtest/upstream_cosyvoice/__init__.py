"""Upstream CosyVoice's own classes, importable without their training stack (stand-ins: see
stubs/README.md): the parity tests' oracle (tests/cosyvoice) and the baseline of
``loadtest.bench_cosyvoice``. Its requirements: tests/cosyvoice/oracle/requirements*.txt."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

STUBS = Path(__file__).parent / "stubs"


def install_stubs() -> None:
    """Make ``import cosyvoice.*`` work without torchaudio, hydra or lightning."""
    if str(STUBS) not in sys.path:
        sys.path.insert(0, str(STUBS))
    if "matcha.utils" in sys.modules:
        return
    import matcha  # the real upstream package; only its training-only utils are replaced

    utils = types.ModuleType("matcha.utils")
    utils.__path__ = []  # a package, so "matcha.utils.pylogger" resolves below
    pylogger = types.ModuleType("matcha.utils.pylogger")
    pylogger.get_pylogger = logging.getLogger
    utils.pylogger = pylogger
    utils.get_pylogger = logging.getLogger
    matcha.utils = utils
    sys.modules["matcha.utils"] = utils
    sys.modules["matcha.utils.pylogger"] = pylogger
