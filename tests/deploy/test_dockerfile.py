"""The image runs what the code expects: non-root, one worker with one thread, the right target,
the model where Settings looks for it, timeouts and thread pools consistent with the settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from function.config import DEFAULT_MODEL_DIR, HEALTH_ROUTE
from tests.deploy import iac

# Read by the Python interpreter itself, not by any package.
INTERPRETER_VARS = frozenset({"PATH", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"})
ENGINES = ("hibari", "cosyvoice")


@pytest.fixture(scope="module")
def envs() -> dict[str, str]:
    return iac.dockerfile().envs


def runtime_stage() -> list[dict]:
    return iac.stage_named(iac.dockerfile(), "runtime")


def test_the_runtime_stage_is_last_and_runs_as_a_non_root_user() -> None:
    assert iac.stages(iac.dockerfile())[-1] == runtime_stage()
    users = [i["value"] for i in runtime_stage() if i["instruction"] == "USER"]
    assert users, "the runtime stage must switch user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and int(user) >= 1000
    # The user is created in the same stage with that uid.
    assert any(f"--uid {user}" in i["value"] for i in runtime_stage() if i["instruction"] == "RUN")


def test_the_runtime_stage_only_copies_built_artifacts_and_installs_nothing() -> None:
    runs = [i["value"] for i in runtime_stage() if i["instruction"] == "RUN"]
    assert len(runs) == 2 and runs[0].startswith("groupadd") and runs[1] == "python -m function.selftest"
    copies = [i["value"] for i in runtime_stage() if i["instruction"] == "COPY"]
    assert copies and all(c.startswith("--from=build ") for c in copies)


def test_base_images_are_one_pinned_python_slim() -> None:
    registry_froms = (
        {i["value"].split()[0] for i in iac.dockerfile().structure if i["instruction"] == "FROM"}
        - {f"build-{engine}" for engine in ENGINES}
        - {"deps", "build-${ENGINE}"}
    )
    (image,) = registry_froms  # builder and runtime share Python and glibc
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image), image


def test_start_command_serves_the_target_from_env_through_functions_framework(envs) -> None:
    cmd = json.loads(iac.dockerfile().cmd)  # exec form: no shell between Cloud Run and the server
    assert cmd[0] == "functions-framework"
    assert "--target" not in cmd, "the target comes from FUNCTION_TARGET so Terraform can switch it"
    source = cmd[cmd.index("--source") + 1]
    assert source == "function/main.py"
    workdir = [i["value"] for i in runtime_stage() if i["instruction"] == "WORKDIR"][-1]
    copies = [i["value"] for i in runtime_stage() if i["instruction"] == "COPY"]
    assert f"--from=build /app/function {workdir}/function" in copies
    assert (iac.ROOT / source).is_file()
    assert envs["FUNCTION_TARGET"] == "synthesize" and "synthesize" in iac.main_functions()
    assert envs["PYTHONPATH"] == workdir  # `from function.x import y` resolves against the source tree


def test_one_worker_one_thread_and_a_timeout_equal_to_the_request_timeout(envs) -> None:
    read_by_gunicorn = iac.gunicorn_env_names()
    assert {"WORKERS", "THREADS", "CLOUD_RUN_TIMEOUT_SECONDS"} <= read_by_gunicorn
    assert envs["WORKERS"] == "1"
    assert envs["THREADS"] == "1"
    assert int(envs["CLOUD_RUN_TIMEOUT_SECONDS"]) == int(envs["TTS_REQUEST_TIMEOUT_S"])
    assert int(envs["TTS_REQUEST_TIMEOUT_S"]) == iac.settings_default("request_timeout_s")
    # Terraform's default HTTP timeout is the same number.
    assert iac.variables()["http_timeout_s"]["default"] == int(envs["CLOUD_RUN_TIMEOUT_SECONDS"])


def test_thread_pools_match_the_engine_threads_and_terraform_sets_the_same_names(envs) -> None:
    thread_vars = {name for name in envs if name in iac.NATIVE_THREAD_VARS}
    assert thread_vars == iac.NATIVE_THREAD_VARS
    assert {envs[name] for name in thread_vars} == {envs["TTS_THREADS"]}
    assert set(iac.locals_()["thread_env"]) == thread_vars


def test_every_environment_variable_is_read_by_something_in_the_image(envs) -> None:
    readers = (
        iac.settings_env_names()
        | iac.functions_framework_env_names()
        | iac.env_names_read_by("hibari.voices")  # HIBARI_HOME: where baked extra voices live
        | iac.NATIVE_THREAD_VARS
        | INTERPRETER_VARS
    )
    assert set(envs) <= readers, set(envs) - readers


@pytest.mark.parametrize("engine", ENGINES)
def test_the_baked_engine_is_the_configured_engine(engine: str) -> None:
    assert iac.dockerfile(engine).envs["TTS_ENGINE"] == engine
    assert f"build-{engine}" in [s[0]["value"].split()[-1] for s in iac.stages(iac.dockerfile(engine))]


def test_the_model_is_baked_where_settings_look_for_it(envs) -> None:
    assert envs["TTS_MODEL_DIR"] == DEFAULT_MODEL_DIR
    cosyvoice = iac.stage_named(iac.dockerfile("cosyvoice"), "build-cosyvoice")
    assert iac.stage_args(cosyvoice)["MODEL_DIR"] == DEFAULT_MODEL_DIR
    copies = [i["value"] for i in runtime_stage() if i["instruction"] == "COPY"]
    parent = str(Path(DEFAULT_MODEL_DIR).parent)
    assert f"--from=build {parent} {parent}" in copies
    runs = " ".join(i["value"] for i in cosyvoice if i["instruction"] == "RUN")
    assert 'python -m function.engines.cosyvoice.convert "$MODEL_DIR"' in runs


def test_the_cosyvoice_build_fetches_only_what_sft_synthesis_reads() -> None:
    cosyvoice = iac.stage_named(iac.dockerfile("cosyvoice"), "build-cosyvoice")
    runs = " ".join(i["value"] for i in cosyvoice if i["instruction"] == "RUN")
    patterns = json.loads(re.search(r"allow_patterns=(\[[^\]]*\])", runs)[1])
    assert "cosyvoice.yaml" in patterns
    assert not {"campplus.onnx", "speech_tokenizer_v1.onnx"} & set(patterns)
    assert all("*" not in p for p in patterns), "explicit files only"
    args = iac.stage_args(cosyvoice)
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["TORCH_VERSION"])
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")
    # The tokenizer vocabulary comes from a pinned openai-whisper and is checked by hash.
    assert re.fullmatch(r"\d{8}", args["WHISPER_VERSION"])
    assert re.fullmatch(r"[0-9a-f]{64}", args["WHISPER_VOCAB_SHA256"])
    assert "sha256sum -c -" in runs
    # The download tools never reach the runtime: their venv is removed in the stage that made it.
    assert "rm -rf /tmp/whisper /opt/fetch" in runs


def test_the_build_proves_the_model_speaks_as_the_runtime_user() -> None:
    instructions = [(i["instruction"], i["value"]) for i in runtime_stage()]
    selftest = instructions.index(("RUN", "python -m function.selftest"))
    last_user = max(n for n, (kind, _) in enumerate(instructions) if kind == "USER")
    assert last_user < selftest
    assert (iac.ROOT / "function" / "selftest.py").is_file()


def test_the_image_listens_where_cloud_run_and_the_probe_expect(envs) -> None:
    exposed = [i["value"] for i in runtime_stage() if i["instruction"] == "EXPOSE"]
    assert exposed == [envs["PORT"]] == [str(iac.locals_()["port"])]
    assert HEALTH_ROUTE.startswith("/")


def test_the_build_context_is_an_allow_list() -> None:
    lines = [
        line.strip()
        for line in (iac.ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        part
        for i in iac.dockerfile().structure
        if i["instruction"] == "COPY" and "--from" not in i["value"]
        for part in i["value"].split()[:-1]
    }
    assert copied <= allowed, copied - allowed
