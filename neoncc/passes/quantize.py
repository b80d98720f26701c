"""8 bits as a pass: applies a calibrated plan (neoncc/quantize/plan.py) to the float graph. Every node before the
float32 tail runs in 8 bits; activation tensors become QASYMM8 with the plan's (scale, offset); one quantize node
follows the input and one dequantize node precedes the tail (or ends the network); the constants become what the
8-bit kernels read: convolution weights int8 per output channel (QSYMM8_PER_CHANNEL, their scales kept on the node),
fully connected weights QASYMM8, biases int32 at input scale x weight scale, so accumulators need no offset
correction for them.

A float32 head (`int8_float_head: [layer, ...]` in the tuning file: the network's first layers, in order) keeps
those layers in float32 and moves the one quantize node to their output: mixed precision where the float kernels
are cheaper (e.g. SqueezeNet's conv1 + pool1: the float direct 3x3/2 convolution on 3 channels costs less than any
8-bit one, and quantizing pool1's output costs less than quantizing the input and permuting it to NHWC)."""

from __future__ import annotations

import numpy as np

from neoncc.errors import UserError
from neoncc.ir.graph import Constant, Graph, Node
from neoncc.quantize.plan import QuantPlan, check_supported, int32


def _quantized(graph: Graph, tensor: str, plan: QuantPlan) -> None:
    t = graph.tensor(tensor)
    t.dtype, t.quant = "qasymm8", plan.tensors[tensor]


def run(graph: Graph, plan: QuantPlan, float_head: list[str] | tuple[str, ...] = (), source: str = "tuning") -> Graph:
    check_supported(graph)
    tail = set(plan.float_tail)
    head = list(float_head)
    names = [n.name for n in graph.nodes[:len(head)]]
    if names != head or any(n.name in tail for n in graph.nodes[:len(head)]) \
            or any(len(n.inputs) != 1 for n in graph.nodes[:len(head)]) or len(head) >= len(graph.nodes):
        raise UserError(f"{source}: int8_float_head: {head} is not a chain of {graph.name}'s first layers "
                        f"(they are {[n.name for n in graph.nodes[:max(len(head), 1)]]})")
    start = graph.nodes[len(head) - 1].output if head else graph.input_name
    first = Node(f"{start}.quantize", "quantize", [start], {"precision": "int8"},
                 shape=graph.shape_of(start), origin=graph.nodes[len(head)].origin)
    if start not in plan.tensors:
        raise UserError(f"{source}: int8_float_head: the plan has no scale for '{start}'")
    graph.insert_after(start, first)
    graph.tensor(first.output)
    graph.tensors[first.output].dtype, graph.tensors[first.output].quant = "qasymm8", plan.tensors[start]
    for node in [n for n in graph.nodes if n.op not in ("quantize",)]:
        if node.name in tail or node.name in head:
            node.attrs["precision"] = "float32"
            continue
        node.attrs["precision"] = "int8"
        _quantized(graph, node.output, plan)
        _quantize_constants(graph, node, plan)
    last_int8 = [n for n in graph.nodes if n.attrs.get("precision") == "int8"][-1]
    back = Node(f"{last_int8.output}.dequantize", "dequantize", [last_int8.output], {"precision": "int8"},
                shape=last_int8.shape, origin=last_int8.origin)
    graph.insert_after(last_int8.output, back)
    return graph


def _quantize_constants(graph: Graph, node: Node, plan: QuantPlan) -> None:
    if not node.params or not graph.constants:
        return
    in_scale = graph.tensor(node.inputs[0]).quant[0]
    weight, bias = f"{node.name}.weight", f"{node.name}.bias"
    w, b = graph.constant(weight), graph.constant(bias)
    if node.op == "conv":
        scales = np.asarray(plan.weight_scales[node.name], np.float64)
        node.attrs["weight_scales"] = [float(s) for s in scales]
        q = np.round(w / scales.reshape(-1, *[1] * (w.ndim - 1)))
        graph.constants[weight] = Constant(np.clip(q, -127, 127).astype(np.int8), graph.constants[weight].layout)
        graph.constants[bias] = Constant(int32(np.round(b / (in_scale * scales)), bias), "O")
    elif node.op == "fc":
        scale, offset = plan.fc_weights[node.name]
        node.attrs["weight_quant"] = (scale, offset)
        graph.constants[weight] = Constant(np.clip(np.round(w / scale) + offset, 0, 255).astype(np.uint8), "OI")
        graph.constants[bias] = Constant(int32(np.round(b / (in_scale * scale)), bias), "O")
