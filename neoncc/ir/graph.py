"""A CNN as a list of nodes in execution order, each producing one named tensor (batch 1), with its trained
constants. Passes rewrite this structure; code generation and the weight file only read it.

- `Node.shape` is the logical output shape (C, H, W) whatever the memory layout.
- `Graph.tensors` holds what a tensor is in memory: its layout (NCHW or NHWC), element type, 8-bit quantization,
  and whether it is a view (a channel range) of another tensor, as a copy-free concatenation makes it.
- `Graph.constants` holds the trained tensors by name (`<node>.weight`, `<node>.bias`, ...), each with the layout
  its array is stored in; passes fold, permute and quantize them, and the weight file serialises them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Param:
    """A trained tensor a node needs, named as in the weights file (`<node>.weight`, `<node>.bias`)."""

    name: str
    shape: tuple[int, ...]


@dataclass
class Constant:
    """A trained tensor's values and the order of its dimensions (OIHW, OHWI, O, OI, ...)."""

    array: np.ndarray
    layout: str


@dataclass
class Tensor:
    """How an activation tensor lives in memory."""

    name: str
    shape: tuple[int, ...]                 # logical: (C, H, W), or (C,) for a vector
    layout: str = "NCHW"                   # NCHW or NHWC (a vector has none that matters)
    dtype: str = "float32"                 # float32 or qasymm8
    quant: tuple[float, int] | None = None  # (scale, offset) of a qasymm8 tensor
    view_of: tuple[str, int] | None = None  # (parent tensor, first channel): a channel range of the parent


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: list[Param] = field(default_factory=list)
    shape: tuple[int, ...] | None = None  # output (C, H, W), set by shape inference
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
    constants: dict[str, Constant] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)

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

    def shape_of(self, tensor: str) -> tuple[int, ...]:
        if tensor == self.input_name:
            return self.input_shape
        producer = self.producer(tensor)
        if producer is None:
            return self.tensors[tensor].shape  # a tensor whose producers write into it (a copy-free concat)
        assert producer.shape is not None, f"shape of {tensor} not inferred yet"
        return producer.shape

    def tensor(self, name: str) -> Tensor:
        """The memory description of a tensor (made on first use, NCHW float32)."""
        if name not in self.tensors:
            self.tensors[name] = Tensor(name, self.shape_of(name))
        return self.tensors[name]

    @property
    def output(self) -> str:
        return self.nodes[-1].output

    def remove(self, node: Node) -> None:
        """Drop a single-input node and feed its consumers from its input instead."""
        (source,) = node.inputs
        for consumer in self.consumers(node.output):
            consumer.inputs = [source if t == node.output else t for t in consumer.inputs]
        self.nodes.remove(node)
        self.tensors.pop(node.output, None)

    def insert_after(self, tensor: str, node: Node) -> None:
        """Put `node` (reading `tensor`) right after the tensor's producer and make every other reader of the
        tensor read the node's output instead."""
        for consumer in self.consumers(tensor):
            consumer.inputs = [node.output if t == tensor else t for t in consumer.inputs]
        producer = self.producer(tensor)
        self.nodes.insert(self.nodes.index(producer) + 1 if producer else 0, node)

    def constant(self, name: str) -> np.ndarray:
        return self.constants[name].array

    @property
    def params(self) -> list[Param]:
        return [p for n in self.nodes for p in n.params]
