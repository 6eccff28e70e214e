"""Extract the Google provider's schema (the pinned 6.50.0) from @cdktf/provider-google@16.12.1,
which is generated from it: each ``lib/<resource>/index.d.ts`` declares a resource's arguments and
nested blocks, each with its registry anchor (``cloud_run_v2_service#node_selector``).

    python scripts/provider_schema.py [cdktf-provider-google-16.12.1.tgz]

Without a tarball it runs ``npm pack``. Writes tests/deploy/provider_google.json: every resource
and data source name, and the full tree (arguments, blocks) of each one terraform/ uses, read only
from what the declarations state (field name from the anchor, block when the field's type is an
interface of the same file). tests/deploy/test_provider_schema.py checks terraform/ against it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@cdktf/provider-google@16.12.1"
PROVIDER = "6.50.0"
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "deploy" / "provider_google.json"

INTERFACE = re.compile(r"^export interface (\w+)(?: extends ([\w.]+))? \{\n(.*?)^\}", re.M | re.S)
FIELD = re.compile(r"/\*\*(?P<doc>(?:(?!\*/).)*)\*/\s*readonly (?P<name>\w+)\??: (?P<type>[^;]+);", re.S)
ANCHOR = re.compile(r"/docs/(resources|data-sources)/(\w+)#(\w+)")


def interfaces(source: str) -> dict[str, tuple[str | None, str]]:
    return {m[1]: (m[2], m[3]) for m in INTERFACE.finditer(source)}


def tree(name: str, found: dict[str, tuple[str | None, str]], anchor_kind: str | None = None) -> dict:
    node: dict = {"arguments": [], "blocks": {}}
    for field in FIELD.finditer(found[name][1]):
        anchor = ANCHOR.search(field["doc"]) or re.search(r"/docs#(\w+)", field["doc"])
        hcl_name = anchor.groups()[-1] if anchor else re.sub(r"(?<!^)([A-Z])", r"_\1", field["name"]).lower()
        base = re.sub(r"\[\]|\| cdktf\.IResolvable|\s", "", field["type"])
        if base in found:
            node["blocks"][hcl_name] = tree(base, found)
        else:
            node["arguments"].append(hcl_name)
    node["arguments"].sort()
    return node


def config_of(source: str) -> tuple[str, str, dict] | None:
    """(kind, type, tree) of the resource or data source a file declares."""
    found = interfaces(source)
    for name, (extends, body) in found.items():
        if extends == "cdktf.TerraformMetaArguments":
            m = ANCHOR.search(body)
            if m:
                return m[1], f"google_{m[2]}", tree(name, found)
    return None


def used_types() -> set[tuple[str, str]]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "terraform").glob("*.tf"))
    return {
        ("resources" if k == "resource" else "data-sources", t)
        for k, t in re.findall(r'^(resource|data) "(\w+)"', text, re.M)
    }


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tgz = Path(argv[0]) if argv else None
        if tgz is None:
            subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True)
            (tgz,) = Path(tmp).glob("*.tgz")
        names: dict[str, list[str]] = {"resources": [], "data-sources": []}
        schemas: dict[str, dict[str, dict]] = {"resources": {}, "data-sources": {}}
        used = used_types()
        provider: dict = {}
        with tarfile.open(tgz) as archive:
            for member in archive:
                if not member.name.endswith("/index.d.ts") or member.name.count("/") != 3:
                    continue
                source = archive.extractfile(member).read().decode()
                if member.name == "package/lib/provider/index.d.ts":
                    found = interfaces(source)
                    provider = tree("GoogleProviderConfig", found)
                    continue
                config = config_of(source)
                if config is None:
                    continue
                kind, rtype, schema = config
                names[kind].append(rtype)
                if (kind, rtype) in used:
                    schemas[kind][rtype] = schema
    document = {
        "package": PACKAGE,
        "provider": PROVIDER,
        "names": {k: sorted(v) for k, v in names.items()},
        "schemas": schemas,
        "provider_config": provider,
    }
    OUT.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(
        f"{OUT}: {len(names['resources'])} resources, {len(names['data-sources'])} data sources, "
        f"{sum(map(len, schemas.values()))} in use"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
