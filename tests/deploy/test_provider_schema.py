"""Every resource, argument and block in terraform/ exists where it is written, per the pinned
provider's own schema (google 6.50.0, as @cdktf/provider-google@16.12.1 declares it; extracted to
provider_google.json by scripts/provider_schema.py). No provider binary can be downloaded here, so
this stands in for the part of `terraform validate` that catches misspelt or misplaced names.

What it cannot catch: argument types and values, required arguments left out, conflicting
arguments, and whatever the provider or the API checks only at plan or apply.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import iac

SCHEMA = Path(__file__).with_name("provider_google.json")
RESOURCE_META = {"count", "for_each", "depends_on", "provider", "lifecycle"}
LIFECYCLE = {"create_before_destroy", "prevent_destroy", "ignore_changes", "replace_triggered_by"}


@cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def problems(body: dict[str, Any], node: dict[str, Any], where: str) -> list[str]:
    """Names in an HCL body that are not where the schema puts them."""
    found = []
    for key, value in body.items():
        if key.startswith("__"):
            continue
        if key == "dynamic":
            for dynamic in value:
                for name, spec in dynamic.items():
                    name = iac.unquote(name)
                    if name not in node["blocks"]:
                        found.append(f"{where}: dynamic block {name} is not a block here")
                        continue
                    for content in spec["content"]:
                        found += problems(content, node["blocks"][name], f"{where}.{name}")
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            if key not in node["blocks"]:
                kind = "an argument" if key in node["arguments"] else "unknown"
                found.append(f"{where}: block {key} is {kind} here")
                continue
            for block in value:
                found += problems(block, node["blocks"][key], f"{where}.{key}")
        elif key not in node["arguments"]:
            kind = "a block" if key in node["blocks"] else "unknown"
            found.append(f"{where}: argument {key} is {kind} here")
    return found


def blocks(kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (iac.unquote(rtype), iac.unquote(name), body)
        for block in iac.terraform().get(kind, [])
        for rtype, named in block.items()
        for name, body in named.items()
    ]


def check(kind: str, rtype: str, name: str, body: dict[str, Any]) -> list[str]:
    where = f"{rtype}.{name}"
    if rtype not in schema()["names"][kind]:
        return [f"{where}: the provider has no {kind[:-1]} {rtype}"]
    assert rtype in schema()["schemas"][kind], f"{rtype}: run scripts/provider_schema.py to extract it"
    meta = {k: v for k, v in body.items() if k in RESOURCE_META}
    found = problems(
        {k: v for k, v in body.items() if k not in RESOURCE_META}, schema()["schemas"][kind][rtype], where
    )
    for lifecycle in meta.get("lifecycle", []):
        unknown = (
            set(lifecycle)
            - LIFECYCLE
            - {"precondition", "postcondition"}
            - {k for k in lifecycle if k.startswith("__")}
        )
        found += [f"{where}: lifecycle {k} is unknown" for k in unknown]
    return found


def test_every_resource_argument_and_block_is_in_the_providers_schema() -> None:
    found = [p for rtype, name, body in blocks("resource") for p in check("resources", rtype, name, body)]
    assert not found, "\n".join(found)
    assert len({rtype for rtype, _, _ in blocks("resource")}) >= 25


def test_every_data_source_and_the_provider_block_are_in_the_schema() -> None:
    found = [p for rtype, name, body in blocks("data") for p in check("data-sources", rtype, name, body)]
    for provider in iac.terraform()["provider"]:
        for name, body in provider.items():
            found += problems(body, schema()["provider_config"], f"provider {iac.unquote(name)}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ('name = "x"\n  tempalte {}', "block tempalte is unknown"),
        (
            'name = "x"\n  template {\n    containers {\n      image = "i"\n      scaling {}\n    }\n  }',
            "block scaling is unknown",
        ),
        ('name = "x"\n  node_selector {}', "block node_selector is unknown"),
        ('name = "x"\n  template = "t"', "argument template is a block"),
        ('name = "x"\n  template {\n    ingress = "all"\n  }', "argument ingress is unknown"),
    ],
)
def test_misspelt_or_misplaced_names_are_caught(tmp_path: Path, mistake: str, message: str) -> None:
    import hcl2

    text = f'resource "google_cloud_run_v2_service" "bad" {{\n  {mistake}\n}}\n'
    ((rtype, named),) = hcl2.loads(text)["resource"][0].items()
    found = check("resources", iac.unquote(rtype), "bad", named[next(iter(named))])
    assert any(message in p for p in found), found
    assert check("resources", "google_cloud_run_v3_service", "bad", {}) == [
        "google_cloud_run_v3_service.bad: the provider has no resource google_cloud_run_v3_service"
    ]


def test_the_extract_is_of_the_pinned_provider() -> None:
    (block,) = iac.terraform()["terraform"]
    pinned = iac.unquote(block["required_providers"][0]["google"]["version"])
    assert schema()["package"] == "@cdktf/provider-google@16.12.1"
    major_minor = re.fullmatch(r"~> (\d+\.\d+)", pinned)[1]
    assert schema()["provider"].startswith(major_minor + ".")
