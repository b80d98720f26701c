"""Shape inference and cost: output shape, parameters and multiply-accumulates of every node."""

from __future__ import annotations

import math

from neoncc.errors import UserError
from neoncc.ir.graph import Graph, Node, Param


def pair(value) -> tuple[int, int]:
    """A YAML size (7 or [7, 5]) as (height, width)."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def padding(value) -> tuple[int, int, int, int]:
    """A YAML padding (1 or [top, bottom, left, right]) as (top, bottom, left, right)."""
    return (value,) * 4 if isinstance(value, int) else tuple(value)


def window_output(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, ceil: bool) -> int:
    """Output length of a sliding window; with ceil, a last window that would start in the padding is dropped
    (Caffe's and PyTorch's rule)."""
    span = size + pad_before + pad_after - kernel
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if ceil and pad_before and (out - 1) * stride >= size + pad_before:
        out -= 1
    return out


def _window(node: Node, c: int, h: int, w: int, out_channels: int) -> tuple[int, int, int]:
    kh, kw = pair(node.attrs["kernel"])
    sh, sw = pair(node.attrs.get("stride", 1))
    top, bottom, left, right = padding(node.attrs.get("pad", 0))
    if kh > h + top + bottom or kw > w + left + right:
        raise UserError(f"{node.origin}: layer '{node.name}': kernel {kh}x{kw} is larger than its padded "
                        f"input {h + top + bottom}x{w + left + right}")
    ceil = node.attrs.get("rounding", "floor") == "ceil"
    return (out_channels, window_output(h, kh, sh, top, bottom, ceil), window_output(w, kw, sw, left, right, ceil))


def _infer(graph: Graph, node: Node) -> tuple[int, int, int]:
    shapes = [graph.shape_of(t) for t in node.inputs]
    if node.op == "concat":
        if len({s[1:] for s in shapes}) != 1:
            raise UserError(f"{node.origin}: layer '{node.name}': inputs {node.inputs} differ in height/width: "
                            f"{[s[1:] for s in shapes]}")
        return (sum(s[0] for s in shapes), *shapes[0][1:])
    if len(shapes) != 1:
        raise UserError(f"{node.origin}: layer '{node.name}' ({node.op}) takes one input, got {node.inputs}")
    c, h, w = shapes[0]
    if node.op == "conv":
        kh, kw = pair(node.attrs["kernel"])
        filters = node.attrs["filters"]
        node.params = [Param(f"{node.name}.weight", (filters, c, kh, kw)), Param(f"{node.name}.bias", (filters,))]
        return _window(node, c, h, w, filters)
    if node.op in ("maxpool", "avgpool"):
        return _window(node, c, h, w, c)
    if node.op == "global_avgpool":
        return (c, 1, 1)
    if node.op in ("relu", "dropout", "softmax", "scale"):
        return (c, h, w)
    raise UserError(f"{node.origin}: layer '{node.name}': no shape rule for op '{node.op}'")


def infer_shapes(graph: Graph) -> Graph:
    for node in graph.nodes:
        node.shape = _infer(graph, node)
    return graph


def macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of a node (convolutions only; the rest is negligible next to them)."""
    if node.op != "conv":
        return 0
    out_c, out_h, out_w = node.shape
    _, in_c, kh, kw = node.params[0].shape
    return out_c * out_h * out_w * in_c * kh * kw


def param_count(node: Node) -> int:
    return sum(math.prod(p.shape) for p in node.params)
