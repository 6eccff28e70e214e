"""Upstream's own ``CosyVoiceFrontEnd.text_normalize`` with WeTextProcessing, as the oracle.

The frontend object is built without its ``__init__`` (which loads onnx models and the speaker
table): only what ``text_normalize`` reads is set, the way upstream's ``__init__`` sets it
(``ZhNormalizer(remove_erhua=False, full_to_half=False, overwrite_cache=True)``, the Chinese
grammar rebuilt with those options, here into ``grammar_dir``; ``EnNormalizer()``, the wheel's
prebuilt English grammar). The bundled fork's French branch is switched off: upstream at commit
46dfe04 has none, and the fork's test sends English text with words such as "or" and "son" to it.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any


def upstream_frontend(grammar_dir: Path) -> Any:
    from loadtest.upstream_cosyvoice import install_stubs

    install_stubs()
    # The frontend module imports torchaudio's kaldi features (zero-shot only) at the top.
    compliance = types.ModuleType("torchaudio.compliance")
    compliance.kaldi = types.ModuleType("torchaudio.compliance.kaldi")
    sys.modules.setdefault("torchaudio.compliance", compliance)
    sys.modules.setdefault("torchaudio.compliance.kaldi", compliance.kaldi)
    import inflect
    from cosyvoice.cli import frontend
    from tn.chinese.normalizer import Normalizer as ZhNormalizer
    from tn.english.normalizer import Normalizer as EnNormalizer
    from whisper.tokenizer import get_tokenizer

    frontend.contains_french = lambda text: False
    front = object.__new__(frontend.CosyVoiceFrontEnd)
    front.tokenizer = get_tokenizer(multilingual=True, num_languages=100, language="en", task="transcribe")
    front.allowed_special = "all"
    front.use_ttsfrd = False
    rebuild = not (grammar_dir / "zh_tn_tagger.fst").is_file()
    front.zh_tn_model = ZhNormalizer(
        cache_dir=str(grammar_dir), remove_erhua=False, full_to_half=False, overwrite_cache=rebuild
    )
    front.en_tn_model = EnNormalizer()
    front.inflect_parser = inflect.engine()
    return front
