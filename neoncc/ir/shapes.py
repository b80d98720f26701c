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


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same": output ceil(size / stride); an odd total pad goes after (bottom/right)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _window(node: Node, c: int, h: int, w: int, out_channels: int) -> tuple[int, int, int]:
    kh, kw = pair(node.attrs["kernel"])
    sh, sw = pair(node.attrs.get("stride", 1))
    if node.attrs.get("pad") == "same":  # resolved once here, so every later stage sees numbers
        node.attrs["pad"] = [*same_padding(h, kh, sh), *same_padding(w, kw, sw)]
    top, bottom, left, right = padding(node.attrs.get("pad", 0))
    if kh > h + top + bottom or kw > w + left + right:
        raise UserError(f"{node.origin}: layer '{node.name}': kernel {kh}x{kw} is larger than its padded "
                        f"input {h + top + bottom}x{w + left + right}")
    ceil = node.attrs.get("rounding", "floor") == "ceil"
    return (out_channels, window_output(h, kh, sh, top, bottom, ceil), window_output(w, kw, sw, left, right, ceil))


def _conv(node: Node, c: int, h: int, w: int) -> tuple[int, int, int]:
    kh, kw = pair(node.attrs["kernel"])
    filters, groups = node.attrs["filters"], node.attrs.get("groups", 1)
    if groups not in (1, c) or filters % groups:
        raise UserError(f"{node.origin}: layer '{node.name}': groups={groups} with {c} input channels and "
                        f"{filters} filters is not supported (only groups=1, or depthwise: groups = input channels "
                        f"and filters a multiple of them)")
    node.params = [Param(f"{node.name}.weight", (filters, c // groups, kh, kw))]
    if node.attrs.get("bias", True):
        node.params.append(Param(f"{node.name}.bias", (filters,)))
    return _window(node, c, h, w, filters)


def _infer(graph: Graph, node: Node) -> tuple[int, int, int]:
    shapes = [graph.shape_of(t) for t in node.inputs]
    if node.op == "concat":
        if len({s[1:] for s in shapes}) != 1:
            raise UserError(f"{node.origin}: layer '{node.name}': inputs {node.inputs} differ in height/width: "
                            f"{[s[1:] for s in shapes]}")
        return (sum(s[0] for s in shapes), *shapes[0][1:])
    if node.op == "add":
        if len(set(shapes)) != 1:
            raise UserError(f"{node.origin}: layer '{node.name}': inputs {node.inputs} differ in shape: {shapes}")
        return shapes[0]
    if len(shapes) != 1:
        raise UserError(f"{node.origin}: layer '{node.name}' ({node.op}) takes one input, got {node.inputs}")
    c, h, w = shapes[0]
    if node.op == "conv":
        return _conv(node, c, h, w)
    if node.op in ("maxpool", "avgpool"):
        return _window(node, c, h, w, c)
    if node.op == "global_avgpool":
        return (c, 1, 1)
    if node.op == "fc":
        units = node.attrs["units"]
        node.params = [Param(f"{node.name}.weight", (units, c * h * w)), Param(f"{node.name}.bias", (units,))]
        return (units, 1, 1)
    if node.op == "batchnorm":
        node.params = [Param(f"{node.name}.{p}", (c,)) for p in ("weight", "bias", "running_mean", "running_var")]
        return (c, h, w)
    if node.op in ("relu", "relu6", "dropout", "softmax", "scale"):
        return (c, h, w)
    raise UserError(f"{node.origin}: layer '{node.name}': no shape rule for op '{node.op}'")


def infer_shapes(graph: Graph) -> Graph:
    for node in graph.nodes:
        node.shape = _infer(graph, node)
    return graph


def macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of a node (convolutions and fully connected; the rest is negligible next to them)."""
    if node.op == "fc":
        return math.prod(node.params[0].shape)
    if node.op != "conv":
        return 0
    out_c, out_h, out_w = node.shape
    _, in_per_group, kh, kw = node.params[0].shape
    return out_c * out_h * out_w * in_per_group * kh * kw


def param_count(node: Node) -> int:
    return sum(math.prod(p.shape) for p in node.params)
