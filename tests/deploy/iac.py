"""Read the deployment files the way the tests need them: Terraform through python-hcl2, the
Dockerfile through dockerfile-parse, and the environment variables each runtime piece reads.

python-hcl2 keeps HCL's quoting: a string literal comes back as '"text"', an expression as
'${expr}'. ``unquote``/``expr`` turn those into plain values; ``resolve`` evaluates the few
expression shapes the Terraform here uses for settings (a variable, tostring of a variable).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any, get_args

import hcl2
from dockerfile_parse import DockerfileParser

from function.config import ENV_PREFIX, EngineName, Settings

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
DOCKERFILE = ROOT / "Dockerfile"

# Thread-pool sizes read by native libraries (OpenMP, MKL, OpenBLAS, numexpr, Accelerate), not by
# any Python code here: the one list of names that cannot be derived from the code.
NATIVE_THREAD_VARS = frozenset(
    {
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    }
)


def settings_env_names() -> set[str]:
    """Every environment variable function.config.Settings reads."""
    return {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}


def engine_names() -> tuple[str, ...]:
    """The engines the code knows (function.config.EngineName), in its order."""
    return get_args(EngineName)


def settings_default(field: str) -> Any:
    return Settings.model_fields[field].default


def settings_bound(field: str, bound: str) -> Any:
    """A numeric bound (ge/le/...) declared on a Settings field."""
    for item in Settings.model_fields[field].metadata:
        if hasattr(item, bound):
            return getattr(item, bound)
    raise AssertionError(f"Settings.{field} declares no {bound} bound")


def functions_framework_env_names() -> set[str]:
    """Variables functions-framework reads: its CLI options' envvars and its gunicorn settings."""
    import functions_framework._cli as cli

    return {p.envvar for p in cli._cli.params if isinstance(p.envvar, str)} | gunicorn_env_names()


def env_names_read_by(module: str) -> set[str]:
    """Variables a module reads with os.environ.get("NAME"), found in its source (not imported)."""
    spec = importlib.util.find_spec(module)
    assert spec and spec.origin, module
    source = Path(spec.origin).read_text(encoding="utf-8")
    return set(re.findall(r"os\.environ\.get\(\s*\"(\w+)\"", source))


def gunicorn_env_names() -> set[str]:
    """Variables functions-framework's gunicorn application reads (workers, threads, timeout)."""
    return env_names_read_by("functions_framework._http.gunicorn")


def main_functions() -> set[str]:
    """Top-level function names in function/main.py (parsed, not imported)."""
    tree = ast.parse((ROOT / "function" / "main.py").read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def health_paths() -> set[str]:
    """GET paths that function/main.py's ROUTES send to health_route (HEALTH_ROUTE and aliases)."""
    from function.config import HEALTH_ROUTE

    tree = ast.parse((ROOT / "function" / "main.py").read_text(encoding="utf-8"))
    (routes,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "ROUTES"
    ]
    paths = set()
    for key, handler in zip(routes.keys, routes.values, strict=True):
        method, path = key.elts
        if method.value == "GET" and getattr(handler, "id", None) == "health_route":
            paths.add(
                HEALTH_ROUTE if isinstance(path, ast.Name) and path.id == "HEALTH_ROUTE" else path.value
            )
    return paths


# --- Terraform -------------------------------------------------------------------------------


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def expr(value: Any) -> str:
    """The expression inside '${...}' (AssertionError if the value is a literal)."""
    assert isinstance(value, str) and value.startswith("${") and value.endswith("}"), value
    return value[2:-1]


@cache
def terraform() -> dict[str, list[Any]]:
    """All top-level blocks of terraform/*.tf, merged by block type."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open(encoding="utf-8") as f:
            for kind, blocks in hcl2.load(f).items():
                if not kind.startswith("__"):
                    merged.setdefault(kind, []).extend(blocks)
    return merged


def variables() -> dict[str, dict[str, Any]]:
    return {unquote(name): body for block in terraform()["variable"] for name, body in block.items()}


def locals_() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in terraform()["locals"]:
        merged.update({k: v for k, v in block.items() if not k.startswith("__")})
    return merged


def resources(kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one type by name."""
    found: dict[str, dict[str, Any]] = {}
    for block in terraform()["resource"]:
        for rtype, named in block.items():
            if unquote(rtype) == kind:
                found.update({unquote(n): body for n, body in named.items()})
    return found


@cache
def example_values() -> dict[str, Any]:
    """Variable values of a deployment: the defaults, overridden by terraform.tfvars.example."""
    values = {name: unquote(body["default"]) for name, body in variables().items() if "default" in body}
    with (TERRAFORM / "terraform.tfvars.example").open(encoding="utf-8") as f:
        example = {k: v for k, v in hcl2.load(f).items() if not k.startswith("__")}
    unknown = set(example) - set(variables())
    assert not unknown, f"terraform.tfvars.example sets undeclared variables {unknown}"
    for name, value in example.items():
        values[name] = [unquote(i) for i in value] if isinstance(value, list) else unquote(value)
    return values


def resolve(value: Any) -> Any:
    """A literal, ``var.X``, ``tostring(var.X)`` or ``join("sep", var.X)`` (with example_values);
    anything else stays as is."""
    if not isinstance(value, str):
        return value
    if not value.startswith("${"):
        return unquote(value)
    inner = expr(value)
    if m := re.fullmatch(r"var\.(\w+)", inner):
        return example_values()[m[1]]
    if m := re.fullmatch(r"tostring\(var\.(\w+)\)", inner):
        return str(example_values()[m[1]])
    if m := re.fullmatch(r'join\("([^"]*)", var\.(\w+)\)', inner):
        return m[1].join(example_values()[m[2]])
    if m := re.fullmatch(r"local\.(\w+)", inner):
        return resolve(locals_()[m[1]])
    if m := re.fullmatch(r'(tostring\()?var\.(\w+) (==|!=) "([^"]*)"\)?', inner):
        equal = (example_values()[m[2]] == m[4]) == (m[3] == "==")
        return str(equal).lower() if m[1] else equal
    if m := re.fullmatch(r"local\.(\w+) \? (.+) : (.+)", inner):
        return resolve(m[2] if resolve(locals_()[m[1]]) else m[3])
    return value


def variable_of(value: Any) -> str:
    """The variable name behind ``var.X``, ``tostring(var.X)`` or ``join("sep", var.X)``."""
    m = re.fullmatch(r'(?:tostring\(|join\("[^"]*", )?var\.(\w+)\)?', expr(value))
    assert m, f"{value} is not a plain variable reference"
    return m[1]


def service_env(service: str) -> dict[str, Any]:
    """The environment a Cloud Run service gets: the maps its dynamic env block merges."""
    run = resources("google_cloud_run_v2_service")["this"]
    (container,) = run["template"][0]["containers"]
    (dynamic,) = [d for d in container["dynamic"] if '"env"' in d]
    for_each = expr(dynamic['"env"']["for_each"])
    m = re.fullmatch(r"merge\((.*)\)", for_each)
    assert m, for_each
    env: dict[str, Any] = {}
    for part in (p.strip() for p in m[1].split(",")):
        if part == "each.value.env":
            env.update(locals_()["services"][service]["env"])
        else:
            local = re.fullmatch(r"local\.(\w+)", part)
            assert local, f"env merges {part}, which the tests cannot read"
            env.update(locals_()[local[1]])
    return env


def validation_conditions(variable: str) -> list[str]:
    return [expr(v["condition"]) for v in variables()[variable].get("validation", [])]


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile(engines: str | None = None) -> DockerfileParser:
    """The Dockerfile as built with ``--build-arg ENGINES=engines`` (None: its default)."""
    return DockerfileParser(str(DOCKERFILE), build_args={} if engines is None else {"ENGINES": engines})


def global_args(parser: DockerfileParser | None = None) -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults (every stage may use them)."""
    args = {}
    for instruction in (parser or dockerfile()).structure:
        if instruction["instruction"] == "FROM":
            break
        if instruction["instruction"] == "ARG":
            name, _, default = instruction["value"].partition("=")
            args[name] = default.strip('"')
    return args


def stage_names(parser: DockerfileParser) -> list[str]:
    """Every stage's name (``FROM image AS name``), in order."""
    return [stage[0]["value"].split()[-1] for stage in stages(parser)]


def stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    """Instructions grouped by stage (each list starts with its FROM)."""
    grouped: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            grouped.append([])
        if grouped:
            grouped[-1].append(instruction)
    return grouped


def stage_named(parser: DockerfileParser, name: str) -> list[dict[str, Any]]:
    for stage in stages(parser):
        if stage[0]["value"].split()[-1] == name:
            return stage
    raise AssertionError(f"no stage {name}")


def runs(stage: list[dict[str, Any]]) -> list[str]:
    """The stage's RUN commands, in order."""
    return [i["value"] for i in stage if i["instruction"] == "RUN"]


def run_step(stage: list[dict[str, Any]], containing: str) -> str:
    """The one RUN command of ``stage`` that contains ``containing``."""
    (step,) = [run for run in runs(stage) if containing in run]
    return step


def stage_args(stage: list[dict[str, Any]]) -> dict[str, str]:
    """ARGs declared in the stage: name -> default ("" when it takes the global ARG's)."""
    args = {}
    for instruction in stage:
        if instruction["instruction"] == "ARG":
            name, _, default = instruction["value"].partition("=")
            args[name] = default.strip('"')
    return args
