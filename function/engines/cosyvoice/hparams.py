"""Read an official ``cosyvoice.yaml`` with plain PyYAML, without hyperpyyaml.

The file is hyperpyyaml: ``!new:pkg.Class`` (construct), ``!name:pkg.func`` (partial),
``!apply:pkg.func`` (call at load) and ``!ref <key>`` (reference another top-level key). Nothing
here is imported or called: a ``!new:``/``!name:``/``!apply:`` node becomes a ``Node`` holding
the dotted target and its arguments, a ``!ref`` is replaced by the value it names, so the lite
runtime reads the numbers (layer sizes, heads, sampling parameters) and builds its own modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Node:
    """A hyperpyyaml object node: ``kind`` is new/name/apply, ``target`` the dotted path."""

    kind: str
    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    args: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Ref:
    key: str


class _Loader(yaml.SafeLoader):
    """SafeLoader that turns hyperpyyaml's tags into ``Node``/``Ref`` instead of failing."""


def _object(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Node:
    kind, _, target = suffix.partition(":")
    if isinstance(node, yaml.MappingNode):
        return Node(kind, target, kwargs=loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Node(kind, target, args=loader.construct_sequence(node, deep=True))
    return Node(kind, target)


_REF = re.compile(r"^<([^<>]+)>$")


def _ref(loader: yaml.SafeLoader, node: yaml.Node) -> Ref:
    value = loader.construct_scalar(node).strip()
    match = _REF.match(value)
    if match is None:
        # hyperpyyaml also allows arithmetic on references; v1 configs do not use it.
        raise ValueError(f"unsupported !ref expression: {value!r}")
    return Ref(match.group(1))


# PyYAML (YAML 1.1) reads "1e-06" as a string; hyperpyyaml's ruamel reads it as a float.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

for _kind in ("new", "name", "apply"):
    _Loader.add_multi_constructor(
        f"!{_kind}:", lambda loader, suffix, node, k=_kind: _object(loader, f"{k}:{suffix}", node)
    )
_Loader.add_constructor("!ref", _ref)


def _resolve(value: Any, top: dict[str, Any]) -> Any:
    if isinstance(value, Ref):
        return _resolve(top[value.key], top)
    if isinstance(value, Node):
        value.kwargs = {k: _resolve(v, top) for k, v in value.kwargs.items()}
        value.args = [_resolve(v, top) for v in value.args]
        return value
    if isinstance(value, dict):
        return {k: _resolve(v, top) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, top) for v in value]
    return value


def load_hparams(path: Path) -> dict[str, Any]:
    """The yaml as plain data: dicts, lists, scalars and ``Node``s, every ``!ref`` resolved."""
    with open(path, encoding="utf-8") as f:
        top = yaml.load(f, Loader=_Loader)
    return {k: _resolve(v, top) for k, v in top.items()}
