"""The Kokoro engine with the real int8 model: cheap construction, voices, speech, determinism,
speed, and the checks that keep a wrong or incomplete model directory from speaking."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from function.engines.base import EngineLoadError
from function.engines.kokoro import KokoroEngine
from function.engines.kokoro.assets import build_timed
from function.engines.kokoro.catalogue import OPENAI_NAMES
from function.engines.kokoro.chunking import stream_parts
from function.engines.kokoro.engine import EDGE_SILENCE, cpu_has_vnni
from function.engines.kokoro.files import MANIFEST, MODEL_FILE, VOICES_DIR, Manifest, read_model_parts
from loadtest.bench_kokoro import log_mel, untrimmed

REPO = Path(__file__).resolve().parents[2]
HEAVY = (
    *("onnxruntime", "jieba", "pypinyin", "cn2an", "misaki", "hibari"),
    *("wetext", "kaldifst", "opencc", "fasttext"),
)
ZH = "今天天气很好，我们去公园散步吧。"  # 14 syllables
EN = "The quick brown fox jumps over the lazy dog."


def run_python(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio))))


def digest(audio: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes()).hexdigest()


def test_construct_voices_and_version_import_nothing_heavy(kokoro_dir: Path) -> None:
    result = run_python(
        "import json, sys\n"
        "from function.engines.kokoro import KokoroEngine\n"
        f"engine = KokoroEngine({str(kokoro_dir)!r})\n"
        "voices = [v.id for v in engine.voices()]\n"
        "table = engine.openai_voices\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(json.dumps({'heavy': heavy, 'voices': voices, 'version': engine.model_version,"
        " 'default': engine.default_voice, 'table': table}))"
    )
    assert result["heavy"] == []
    assert result["default"] == "zf_xiaobei" and len(result["voices"]) == 36
    assert result["version"].startswith("kokoro-82m-v1.0-int8-")
    assert set(result["table"]) == {"en", "zh"}


def test_voices_are_mandarin_and_english_only(engine: KokoroEngine) -> None:
    voices = {v.id: v for v in engine.voices()}
    assert {v[:2] for v in voices} == {"zf", "zm", "af", "am", "bf", "bm"}  # no ja/es/fr/hi/it/pt
    assert voices["zf_xiaobei"].language == "zh-CN" and voices["zf_xiaobei"].also_reads == ("en",)
    assert voices["zf_xiaobei"].reads("en") and not voices["af_heart"].reads("zh")
    assert voices["af_heart"].language == "en-US" and voices["bm_george"].language == "en-GB"
    assert "female" in voices["zf_xiaoyi"].description and "male" in voices["zm_yunxi"].description


def test_openai_names_cover_both_languages(engine: KokoroEngine) -> None:
    table = engine.openai_voices
    voices = {v.id: v for v in engine.voices()}
    for base in ("en", "zh"):
        assert set(table[base]) == set(OPENAI_NAMES)
        assert all(voices[v].speaks(base) for v in table[base].values())
    assert table["en"]["alloy"] == "af_alloy" and table["en"]["fable"] == "bm_fable"
    assert table["zh"]["nova"].startswith("zf_") and table["zh"]["onyx"].startswith("zm_")
    # Every Mandarin voice but zf_xiaoni (hard to understand: by name only) is reachable.
    assert set(table["zh"].values()) == {v for v in voices if v.startswith("z")} - {"zf_xiaoni"}


def test_mandarin_speech(engine: KokoroEngine) -> None:
    audio = engine.synthesize(ZH, "zf_xiaobei", 1.0)
    assert engine.sample_rate == 24_000 and audio.dtype == np.float32 and audio.ndim == 1
    seconds = len(audio) / engine.sample_rate
    assert 0.15 * 14 <= seconds <= 0.45 * 14, seconds  # 14 syllables at a speaking pace
    assert rms(audio) > 0.02 and np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    # Kokoro's silent frame (~0.3 s before, ~1 s after) is cut: sound within 0.1 s of both ends.
    edge = engine.sample_rate // 10
    assert np.abs(audio[:edge]).max() >= EDGE_SILENCE and np.abs(audio[-edge:]).max() >= EDGE_SILENCE


def test_mixed_chinese_english_is_one_utterance(engine: KokoroEngine) -> None:
    text = "我昨天买了一台 iPhone，价格是 5999 元。"
    (piece,) = engine.pieces(text)
    audio = engine.synthesize(piece, "zm_yunjian", 1.0)
    seconds = len(audio) / engine.sample_rate
    # 22 syllables (5999 is seven) and "iPhone": well over the 2 s the raw text would give.
    assert 0.15 * 24 <= seconds <= 0.45 * 24, seconds
    assert rms(audio) > 0.02


def test_english_speech_and_accents(engine: KokoroEngine) -> None:
    american = engine.synthesize(EN, "af_heart", 1.0)
    british = engine.synthesize(EN, "bf_emma", 1.0)
    for audio in (american, british):
        assert 1.5 <= len(audio) / engine.sample_rate <= 5.0  # 11 words
        assert rms(audio) > 0.02
    assert engine.phonemes(EN, "af_heart") != engine.phonemes(EN, "bf_emma")  # dˈɔɡ vs dˈɒɡ
    assert digest(american) != digest(british)


def test_speed_changes_duration(engine: KokoroEngine) -> None:
    normal = len(engine.synthesize(ZH, "zf_xiaoxiao", 1.0))
    fast = len(engine.synthesize(ZH, "zf_xiaoxiao", 1.5))
    slow = len(engine.synthesize(ZH, "zf_xiaoxiao", 0.75))
    assert 0.55 < fast / normal < 0.8
    assert 1.2 < slow / normal < 1.5


def test_output_is_deterministic_across_processes(engine: KokoroEngine, kokoro_dir: Path) -> None:
    first = engine.synthesize("你好。", "zf_xiaoni", 1.0)
    assert digest(first) == digest(engine.synthesize("你好。", "zf_xiaoni", 1.0))
    other = run_python(
        "import hashlib, json, numpy as np\n"
        "from function.engines.kokoro import KokoroEngine\n"
        f"engine = KokoroEngine({str(kokoro_dir)!r}, threads=1)\n"
        "audio = np.ascontiguousarray(engine.synthesize('你好。', 'zf_xiaoni', 1.0), np.float32)\n"
        "print(json.dumps({'sha': hashlib.sha256(audio.tobytes()).hexdigest()}))"
    )
    assert other["sha"] == digest(first)


def test_unknown_voice_is_refused(engine: KokoroEngine) -> None:
    with pytest.raises(ValueError, match="jf_alpha"):
        engine.synthesize("こんにちは", "jf_alpha", 1.0)


def _copy_without_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(MODEL_FILE))
    return target


def test_a_model_file_with_the_wrong_hash_does_not_load(kokoro_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy_without_model(kokoro_dir, tmp_path / "model")
    (model_dir / MODEL_FILE).write_bytes(b"not the kokoro model" * 1000)
    # The export's path, as in a dir built without the timed model (test_assets checks the static
    # model's own hash, test_marks the timed model's).
    manifest = Manifest.read(model_dir)
    (model_dir / MANIFEST).write_text(replace(manifest, timed_sha256=None).to_json())
    engine = KokoroEngine(model_dir, static=False)
    assert engine.voices()  # the metadata is still readable: health checks keep working
    with pytest.raises(EngineLoadError, match="sha256"):
        engine.load()


def test_a_changed_voice_file_does_not_load(kokoro_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy_without_model(kokoro_dir, tmp_path / "model")
    voice = model_dir / VOICES_DIR / "af_heart.bin"
    data = bytearray(voice.read_bytes())
    data[100] ^= 0xFF
    voice.write_bytes(bytes(data))
    with pytest.raises(EngineLoadError, match=r"af_heart\.bin does not match"):
        KokoroEngine(model_dir).load()


def test_a_missing_voices_dir_is_a_clear_error(kokoro_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy_without_model(kokoro_dir, tmp_path / "model")
    shutil.rmtree(model_dir / VOICES_DIR)
    engine = KokoroEngine(model_dir)
    with pytest.raises(EngineLoadError, match=r"no voices directory .*function\.engines\.kokoro\.assets"):
        engine.voices()
    with pytest.raises(EngineLoadError, match="no voices directory"):
        engine.load()


def test_model_version_follows_the_model_and_every_voice(kokoro_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy_without_model(kokoro_dir, tmp_path / "model")
    before = KokoroEngine(model_dir).model_version
    assert KokoroEngine(model_dir).model_version == before  # stable across instances
    manifest = Manifest.read(model_dir)
    changed_voice = Manifest(manifest.model_sha256, {**manifest.voices, "zm_yunxi": "0" * 64})
    (model_dir / MANIFEST).write_text(changed_voice.to_json())
    after_voice = KokoroEngine(model_dir).model_version
    changed_model = Manifest(
        "8fbea51ea711f2af382e88c833d9e288c6dc82ce5e98421ea61c058ce21a34cb", manifest.voices
    )
    (model_dir / MANIFEST).write_text(changed_model.to_json())
    after_model = KokoroEngine(model_dir).model_version
    assert len({before, after_voice, after_model}) == 3
    assert after_model.startswith("kokoro-82m-v1.0-fp32-")


LOUD_ZH = "注意安全！前方道路正在施工，请绕行！"
LONG_ZH = "科学家们经过多年的研究，终于找到了治疗这种疾病的新方法，这个发现让全世界的病人看到了希望。"


def test_the_7_bit_static_model_runs_on_every_cpu(
    engine: KokoroEngine, kokoro_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Manifest.read(kokoro_dir).static_sha256  # the build made one
    assert engine.uses_static and engine.times_words()
    # A fake for what this machine cannot be: a CPU without VNNI (Cloud Run may place one there).
    monkeypatch.setattr("function.engines.kokoro.engine.cpu_has_vnni", lambda: False)
    assert KokoroEngine(kokoro_dir).uses_static
    static = KokoroEngine(kokoro_dir, static=True).model_version
    dynamic = KokoroEngine(kokoro_dir, static=False).model_version
    assert "-int8-static-" in static and "-int8-" in dynamic and static != dynamic  # never one cache key


def test_an_older_builds_model_dir_still_loads_its_8_bit_static_model_only_with_vnni(
    kokoro_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What builds before the 7-bit weights left: the timed model beside the static one, and a
    # manifest naming both without weight bits (so, 8-bit weights).
    old = tmp_path / "model"
    shutil.copytree(kokoro_dir, old)
    timed_sha256 = build_timed(old, read_model_parts())
    manifest = replace(Manifest.read(old), timed_sha256=timed_sha256, static_weight_bits=None)
    (old / MANIFEST).write_text(manifest.to_json())
    assert KokoroEngine(old).uses_static == cpu_has_vnni()
    # A fake for what this machine cannot be: a CPU without VNNI, where it runs the timed model.
    monkeypatch.setattr("function.engines.kokoro.engine.cpu_has_vnni", lambda: False)
    plain = KokoroEngine(old)
    assert not plain.uses_static and plain.times_words() and "-static-" not in plain.model_version
    plain.load()
    audio = plain.synthesize("早上好。", "zm_yunyang", 1.0)
    assert len(audio) > 0.3 * plain.sample_rate and np.abs(audio).max() > 0.05


def test_the_static_model_keeps_durations_and_sounds_like_the_dynamic_one(kokoro_dir: Path) -> None:
    dynamic = KokoroEngine(kokoro_dir, threads=1, static=False)
    static = KokoroEngine(kokoro_dir, threads=1, static=True)
    dynamic.load()
    static.load()
    for text in (LOUD_ZH, LONG_ZH):
        for voice in ("zf_xiaobei", "zm_yunjian"):
            before, after = untrimmed(dynamic, text, voice), untrimmed(static, text, voice)
            assert len(after) == len(before)  # the encoder and predictor are untouched
            assert np.abs(after).max() < 0.95  # no clipping on loud speech
            # Measured 3.6-4.9 dB; quantising conv_post too gave 8.8 dB and clipped.
            assert np.abs(log_mel(after) - log_mel(before)).mean() < 6
    other_voice = untrimmed(dynamic, LOUD_ZH, "zf_xiaoyi")
    loud = untrimmed(dynamic, LOUD_ZH, "zf_xiaobei")
    n = min(len(other_voice), len(loud))
    assert np.abs(log_mel(other_voice[:n]) - log_mel(loud[:n])).mean() > 8  # the measure tells voices apart


def test_stream_parts_start_short_at_a_clause_and_grow() -> None:
    text = "春天来了，公园里的花都开了，孩子们在草地上奔跑，鸟儿在树上唱歌，老人们在湖边散步聊天。"
    parts = stream_parts(text)
    assert parts[0] == "春天来了，"
    assert "".join(parts) == text
    # Each part but the last (what is left) holds more than the one before it.
    assert all(len(later) > len(earlier) for earlier, later in itertools.pairwise(parts[:-1]))
    assert len(parts) == 4
    assert stream_parts("人工智能正在改变我们的生活方式。") == ["人工智能正在改变我们的生活方式。"]


def test_a_stream_starts_with_a_clause_and_its_joins_clip_no_syllable(engine: KokoroEngine) -> None:
    from loadtest import asr

    text = "从智能手机到自动驾驶汽车，新技术让很多事情变得更加方便。春天来了。"
    streamed = list(engine.speak_streamed(text, "zf_xiaobei", 1.0, 0.3))
    whole = list(engine.speak(text, "zf_xiaobei", 1.0, 0.3))
    assert engine.streamed_variant(1.0) is not None  # stored under its own key: other samples
    assert len(streamed[0]) < 0.6 * len(whole[0])  # the first clause, not the first sentence
    edge = engine.sample_rate // 50  # 20 ms
    for chunk in streamed:
        if chunk.any():  # speech, not a pause: it starts and ends in near-silence, no cut syllable
            assert np.abs(chunk[:edge]).max() < 0.02 and np.abs(chunk[-edge:]).max() < 0.02
    heard = asr.transcribe(np.concatenate(streamed), engine.sample_rate, "zh")
    assert asr.cer(text, heard) <= 0.1, heard
