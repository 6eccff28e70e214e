"""Looking through and rewriting an ONNX graph: what the build's graph surgery (``quantize.py``,
``fuse.py``) shares. Build time only; imports onnx."""

from __future__ import annotations

from typing import Any

import numpy as np


class Graph:
    """Producer and consumer lookups over an ``onnx.GraphProto`` as it stood when made, and its
    constant initializers."""

    def __init__(self, graph: Any) -> None:
        from onnx import numpy_helper

        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in dict.fromkeys(node.input):  # a node reading a tensor twice is one consumer
                self.consumers.setdefault(name, []).append(node)
        self._inits = {i.name: i for i in graph.initializer}
        self._to_array = numpy_helper.to_array

    def constant(self, name: str) -> np.ndarray | None:
        """The initializer ``name``'s value, None when ``name`` is not an initializer."""
        init = self._inits.get(name)
        return None if init is None else self._to_array(init)

    def only(self, tensor: str, op_type: str) -> Any | None:
        """The one node reading ``tensor``, if there is exactly one and it is an ``op_type``."""
        nodes = self.consumers.get(tensor, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op_type else None

    def made_by(self, tensor: str, op_type: str) -> Any | None:
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == op_type else None


def replace(model: Any, replaced: dict[int, list[Any]]) -> None:
    """Put each node's replacement (keyed by the node's ``id``; nodes whose inputs are all produced
    before it, or none to remove it) in its place, and drop what nothing reads any more."""
    nodes = []
    for node in model.graph.node:
        nodes.extend(replaced.get(id(node), [node]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    prune(model)


def prune(model: Any) -> None:
    """Drop the nodes and initializers nothing reads any more (the replaced groups' leftovers)."""
    graph = model.graph
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        kept = [node for node in graph.node if any(out in used for out in node.output)]
        if len(kept) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(kept)
    used = {name for node in graph.node for name in node.input}
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
