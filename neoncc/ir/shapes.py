"""Shape inference and cost: output shape, parameters and multiply-accumulates of every node (each op's own rule
lives with the op in neoncc/ops); the window arithmetic they share."""

from __future__ import annotations

import math

from neoncc.errors import UserError
from neoncc.ir.graph import Graph, Node


def pair(value) -> tuple[int, int]:
    """A YAML size (7 or [7, 5]) as (height, width)."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def padding(value) -> tuple[int, int, int, int]:
    """A YAML padding (1 or [top, bottom, left, right]) as (top, bottom, left, right)."""
    return (value,) * 4 if isinstance(value, int) else tuple(value)


def window_output(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, ceil: bool,
                  ceil_rule: str = "caffe") -> int:
    """Output length of a sliding window. With ceil, a last window starting past the input and its padding before
    it is dropped: by Caffe's rule only when there is padding, by ONNX's and PyTorch's always."""
    span = size + pad_before + pad_after - kernel
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if ceil and (pad_before or ceil_rule == "onnx") and (out - 1) * stride >= size + pad_before:
        out -= 1
    return out


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same": output ceil(size / stride); an odd total pad goes after (bottom/right)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def infer_shapes(graph: Graph) -> Graph:
    """Every node's output shape and trained tensors, by its op's shape rule (neoncc/ops)."""
    from neoncc import ops
    for node in graph.nodes:
        op = ops.get(node.op, node)
        shapes = [graph.shape_of(t) for t in node.inputs]
        if op.arity is not None and len(shapes) != op.arity:
            raise UserError(f"{node.origin}: layer '{node.name}' ({node.op}) takes {op.arity} input"
                            f"{'s' if op.arity > 1 else ''}, got {node.inputs}")
        if any(len(s) != 3 for s in shapes):
            raise UserError(f"{node.origin}: layer '{node.name}' ({node.op}): its input is not a C x H x W tensor")
        node.shape = tuple(op.infer(node, shapes))
        if any(d < 1 for d in node.shape):
            raise UserError(f"{node.origin}: layer '{node.name}': output shape {list(node.shape)} is empty")
    return graph


def macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of a node (convolutions and fully connected; the rest is negligible next to them)."""
    from neoncc import ops
    return ops.get(node.op, node).macs(node, [graph.shape_of(t) for t in node.inputs])


def param_count(node: Node) -> int:
    return sum(math.prod(p.shape) for p in node.params)
