"""Memory layout as a pass: each node runs in NCHW or NHWC, and a permute node is inserted wherever a tensor is
read in the other layout than it was written in. Convolution weights are permuted here, at compile time.

Modes: `nchw` and `nhwc` force one layout wherever the node's kernel runs in it; `auto` takes each convolution's
layout from the tuning file (measured per layer by `bench tune`), else the target's `default_layout`, and lets every
other node follow its first input, so conversions happen only where a measured choice asks for one. The engine's
input is NCHW (its contract) and so is a spatial output; a vector (C x 1 x 1) is the same in both layouts.
"""

from __future__ import annotations

import numpy as np

from neoncc import ops
from neoncc.errors import UserError
from neoncc.ir.graph import Constant, Graph, Node

MODES = ("auto", "nchw", "nhwc")


def _wanted(graph: Graph, node: Node, mode: str, tuning: dict, default: str, layouts: dict[str, str]) -> str:
    """The node's layout; when its kernel does not run in it, the op's first kernel that does (in the registry's
    order, for the node's precision) replaces it, unless a tuning file or the target's strategy chose the kernel and
    the mode is auto (then the kernel's own layout wins: e.g. our NCHW 8-bit convolution over ACL's NHWC one)."""
    op = ops.get(node.op)
    impl = op.implementations[node.attrs["impl"]]
    if mode != "auto":
        wanted = mode.upper()
    elif node.name in tuning.get("layout", {}) and node.attrs.get("precision", "float32") == "float32":
        wanted = tuning["layout"][node.name]  # measured in float32: an 8-bit node follows its kernels instead
    elif node.op == "conv":
        wanted = default
    else:
        wanted = layouts.get(node.inputs[0], "NCHW")
    if wanted in impl.layouts:
        return wanted
    if mode != "auto" or node.attrs.get("chosen_by", "default") == "default":
        precision = node.attrs.get("precision", "float32")
        for key, other in op.implementations.items():
            if wanted in other.layouts and precision in other.precisions and other.accepts(node):
                node.attrs["impl"] = key
                node.attrs.pop("method", None)
                return wanted
    return impl.layouts[0]


def follows_input(graph: Graph, node: Node) -> bool:
    """A softmax of a C x 1 x 1 tensor runs in its input's layout. ACL's softmax reduces over dimension 0: the
    channels of an NHWC C x 1 x 1 tensor as they are, while an NCHW one is first flattened into a vector
    (Softmax.lower); the tensor is the same bytes in both layouts, so an NHWC producer's output needs neither a
    permute nor a flatten copy."""
    return node.op == "softmax" and graph.shape_of(node.inputs[0])[1:] == (1, 1)


def fixed_layout(graph: Graph, node: Node) -> str | None:
    """The layout a node runs in whatever is asked: NCHW for a softmax of a spatial tensor and for a fully connected
    layer with a C x 1 x 1 output."""
    if (node.op == "softmax" and not follows_input(graph, node)) or (node.op == "fc" and node.shape[1:] == (1, 1)):
        return "NCHW"
    return None


def _permute_impl(node: Node) -> str:
    """The permute op's first kernel that runs this conversion in its precision (the registry's order)."""
    precision = node.attrs.get("precision") or "float32"
    return next(key for key, impl in ops.get("permute").implementations.items()
                if precision in impl.precisions and impl.accepts(node))


def run(graph: Graph, mode: str = "nchw", tuning: dict | None = None, default: str = "NCHW") -> Graph:
    if mode not in MODES:
        raise UserError(f"layout={mode}: expected one of {', '.join(MODES)}")
    tuning = tuning or {}
    layouts = {graph.input_name: "NCHW"}
    converted: dict[tuple[str, str], str] = {}  # (tensor, layout) -> the permuted copy
    for node in list(graph.nodes):
        layout = _wanted(graph, node, mode, tuning, default, layouts)
        if follows_input(graph, node):
            layout = layouts[node.inputs[0]]
        layout = fixed_layout(graph, node) or layout
        inputs = []
        for tensor in node.inputs:
            if layouts[tensor] == layout:
                inputs.append(tensor)
                continue
            if (tensor, layout) not in converted:
                permute = Node(f"{tensor}.to_{layout.lower()}", "permute", [tensor], {"to": layout, "layout": layout},
                               shape=graph.shape_of(tensor), origin=node.origin)
                permute.attrs["precision"] = node.attrs.get("precision", "float32")
                permute.attrs["impl"] = _permute_impl(permute)
                graph.nodes.insert(graph.nodes.index(node), permute)
                source = graph.tensor(tensor)
                target = graph.tensor(permute.output)
                target.dtype, target.quant, target.layout = source.dtype, source.quant, layout
                layouts[permute.output] = layout
                converted[(tensor, layout)] = permute.output
            inputs.append(converted[(tensor, layout)])
        node.inputs = inputs
        node.attrs["layout"] = layout
        layouts[node.output] = layout
        graph.tensor(node.output).layout = layout
        _permute_constants(graph, node, layout)
    last = graph.nodes[-1]
    if layouts[last.output] != "NCHW" and last.shape[1:] != (1, 1):
        permute = Node(f"{last.output}.to_nchw", "permute", [last.output],
                       {"to": "NCHW", "impl": "acl", "layout": "NCHW", "precision": last.attrs.get("precision")},
                       shape=last.shape, origin=last.origin)
        graph.nodes.append(permute)
        graph.tensor(permute.output).layout = "NCHW"
    return graph


def _permute_constants(graph: Graph, node: Node, layout: str) -> None:
    """Convolution weights in the order ACL reads them for the node's layout: OIHW (NCHW) or OHWI (NHWC); a
    depthwise kernel has no input dimension: OHW (NCHW) or HWO (NHWC)."""
    if node.op != "conv" or f"{node.name}.weight" not in graph.constants:
        return
    constant = graph.constants[f"{node.name}.weight"]
    assert constant.layout == "OIHW", f"{node.name}: weights already permuted"
    array = constant.array
    if node.attrs.get("groups", 1) > 1:
        array = array[:, 0]
        graph.constants[f"{node.name}.weight"] = Constant(
            np.ascontiguousarray(array.transpose(1, 2, 0)) if layout == "NHWC" else array,
            "HWO" if layout == "NHWC" else "OHW")
    elif layout == "NHWC":
        graph.constants[f"{node.name}.weight"] = Constant(np.ascontiguousarray(array.transpose(0, 2, 3, 1)), "OHWI")
