"""A CNN as a list of nodes in execution order, each producing one named tensor (NCHW, batch 1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Param:
    """A trained tensor of a node, named as in the weights file (`<node>.weight`, `<node>.bias`)."""

    name: str
    shape: tuple[int, ...]


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: list[Param] = field(default_factory=list)
    shape: tuple[int, int, int] | None = None  # output (C, H, W), set by shape inference
    origin: str = ""  # where the user wrote it ("file:line"), for error messages

    @property
    def output(self) -> str:
        return self.name


@dataclass
class Graph:
    name: str
    input_name: str
    input_shape: tuple[int, int, int]
    nodes: list[Node]
    source: str = ""  # the file it came from
    meta: dict[str, Any] = field(default_factory=dict)  # preprocessing, labels, description

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def producer(self, tensor: str) -> Node | None:
        for node in self.nodes:
            if node.output == tensor:
                return node
        return None

    def shape_of(self, tensor: str) -> tuple[int, int, int]:
        if tensor == self.input_name:
            return self.input_shape
        shape = self.node(tensor).shape
        assert shape is not None, f"shape of {tensor} not inferred yet"
        return shape

    @property
    def output(self) -> str:
        return self.nodes[-1].output

    def remove(self, node: Node) -> None:
        """Drop a single-input node and feed its consumers from its input instead."""
        (source,) = node.inputs
        for consumer in self.consumers(node.output):
            consumer.inputs = [source if t == node.output else t for t in consumer.inputs]
        self.nodes.remove(node)

    @property
    def params(self) -> list[Param]:
        return [p for n in self.nodes for p in n.params]
