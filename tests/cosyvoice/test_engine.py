"""The engine's cheap side: no torch at import or construction, voices from metadata only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from function.engines.cosyvoice import CosyVoiceEngine
from function.engines.cosyvoice.metadata import spk2info_speakers
from function.engines.cosyvoice.precision import PRECISIONS, label, native_bf16
from function.local import REPO
from loadtest.upstream_cosyvoice.random_model import SPEAKERS

UPSTREAM_PACKAGES = ("cosyvoice", "matcha", "whisper", "torchaudio")


def run_python(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_and_voices_do_not_import_torch(tiny_model_dir: Path) -> None:
    result = run_python(
        "import json, sys\n"
        "from function.engines.cosyvoice import CosyVoiceEngine\n"
        f"engine = CosyVoiceEngine({str(tiny_model_dir)!r}, threads=1)\n"
        "voices = [v.id for v in engine.voices()]\n"
        "version = engine.model_version\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'voices': voices, 'version': version}))"
    )
    assert result["torch"] is False
    assert result["voices"] == list(SPEAKERS)
    assert result["version"].startswith("cosyvoice-300m-sft-")


def test_runtime_never_imports_upstream_packages(tiny_model_dir: Path) -> None:
    result = run_python(
        "import json, sys\n"
        "from function.engines.cosyvoice import CosyVoiceEngine\n"
        f"engine = CosyVoiceEngine({str(tiny_model_dir)!r}, threads=1)\n"
        "engine.load()\n"
        "audio = engine.synthesize('Hi there.', '英文女', 1.0)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{UPSTREAM_PACKAGES!r})\n"
        "print(json.dumps({'loaded': loaded, 'torch': 'torch' in sys.modules, 'samples': len(audio)}))"
    )
    assert result["torch"] is True
    assert result["samples"] > 0
    assert result["loaded"] == []


def test_voices_have_ascii_aliases_languages_and_openai_names(tiny_model_dir: Path) -> None:
    engine = CosyVoiceEngine(tiny_model_dir)
    voices = {v.id: v for v in engine.voices()}
    assert voices["英文女"].aliases == ("en-female",) and voices["英文女"].language == "en-US"
    assert voices["中文男"].aliases == ("zh-male",) and voices["中文男"].speaks("zh")
    assert voices["粤语女"].language == "yue-HK"
    assert voices["韩语女"].speaks("ko") and voices["日语男"].speaks("ja")
    mapping = engine.openai_voices
    assert mapping["en"]["alloy"] == mapping["en"]["nova"] == "英文女"
    assert mapping["en"]["onyx"] == mapping["en"]["echo"] == "英文男"
    assert mapping["zh"]["alloy"] == "中文女" and mapping["zh"]["onyx"] == "中文男"
    assert voices["中文女"].reads("en") and voices["粤语女"].reads("zh") and not voices["英文女"].reads("zh")


def test_speakers_are_read_from_spk2info_without_torch(tiny_model_dir: Path) -> None:
    assert spk2info_speakers(tiny_model_dir / "spk2info.pt") == list(SPEAKERS)


def test_model_version_changes_with_the_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    for path in tiny_model_dir.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    before = CosyVoiceEngine(tmp_path).model_version
    with open(tmp_path / "llm.pt", "ab") as f:
        f.write(b"\0")
    assert CosyVoiceEngine(tmp_path).model_version != before


def test_faster_precisions_have_their_own_cache_keys_and_speak(tiny_model_dir: Path) -> None:
    versions = {p: CosyVoiceEngine(tiny_model_dir, threads=1, precision=p).model_version for p in PRECISIONS}
    # One key per arithmetic: "fast" is "int8" on a CPU without native bf16, and shares its key.
    assert len(set(versions.values())) == len({label(p) for p in PRECISIONS})
    assert not versions["fp32"].endswith(("bf16", "int8"))
    assert versions["fast"].endswith("-int8-flowbf16-hiftbf16" if native_bf16() else "-int8")
    for precision in ("bf16", "int8", "fast"):
        samples = CosyVoiceEngine(tiny_model_dir, threads=1, precision=precision).synthesize(
            "Hello there, how are you today?", "英文女", 1.0
        )
        assert samples.dtype == np.float32 and np.isfinite(samples).all()
        assert len(samples) > 22050 // 10 and np.abs(samples).max() > 1e-3
