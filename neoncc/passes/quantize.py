"""8 bits as a pass: applies a calibrated plan (neoncc/quantize/plan.py) to the float graph. Every node before the
float32 tail runs in 8 bits; activation tensors become QASYMM8 with the plan's (scale, offset); one quantize node
follows the input and one dequantize node precedes the tail (or ends the network); the constants become what the
8-bit kernels read: convolution weights int8 per output channel (QSYMM8_PER_CHANNEL, their scales kept on the node),
fully connected weights QASYMM8, biases int32 at input scale x weight scale, so accumulators need no offset
correction for them.

Mixed precision: layers a tuning file names (`int8_float_layers: [layer, ...]`, chosen by counting) run in float32
inside the 8-bit network, with a quantize node after them and a dequantize node before them where their neighbours
are 8-bit; e.g. SqueezeNet's conv1 + pool1 (the float direct 3x3/2 convolution on 3 channels costs less than any
8-bit one, and quantizing pool1's output less than quantizing the input and permuting it to NHWC) and its
expand3x3 layers (float Winograd needs 2.25-5x fewer multiplications than any 8-bit product; the conversions cost a
few instructions per value). The quantize node after a layer feeding a concat writes into the concat (no copy)."""

from __future__ import annotations

import math

import numpy as np

from neoncc.errors import UserError
from neoncc.ir.graph import Constant, Graph, Node
from neoncc.quantize.plan import QuantPlan, check_supported, int32, int8_weights


def _quantized(graph: Graph, tensor: str, plan: QuantPlan) -> None:
    t = graph.tensor(tensor)
    t.dtype, t.quant = "qasymm8", plan.tensors[tensor]


def run(graph: Graph, plan: QuantPlan, float_layers: list[str] | tuple[str, ...] = (), source: str = "tuning") -> Graph:
    check_supported(graph)
    keep = set(plan.float_tail) | set(float_layers)
    names = {n.name: n for n in graph.nodes}
    for name in float_layers:
        if name not in names:
            raise UserError(f"{source}: int8_float_layers: {graph.name} has no layer '{name}'")
        if names[name].op == "concat":
            raise UserError(f"{source}: int8_float_layers: '{name}' (concat) cannot run in float32 inside the 8-bit "
                            "network (its inputs write into it in place: keep its producers in float32 instead)")
    for node in graph.nodes:
        node.attrs["precision"] = "float32" if node.name in keep else "int8"
    if all(n.attrs["precision"] == "float32" for n in graph.nodes):
        raise UserError(f"{source}: int8_float_layers: every layer of {graph.name} would run in float32")
    # A conversion wherever a tensor's producer and a consumer differ in precision: quantize where float32 meets
    # 8 bits (at the plan's scale for that tensor), dequantize the other way; one per tensor and direction.
    precision = {graph.input_name: "float32", **{n.output: n.attrs["precision"] for n in graph.nodes}}
    for tensor in [graph.input_name] + [n.output for n in list(graph.nodes)]:
        readers = [c for c in graph.consumers(tensor) if c.op not in ("quantize", "dequantize")
                   and c.attrs["precision"] != precision[tensor]]
        if not readers:
            continue
        to_int8 = precision[tensor] == "float32"
        op = "quantize" if to_int8 else "dequantize"
        producer = graph.producer(tensor)
        convert = Node(f"{tensor}.{op}", op, [tensor], {"precision": "int8"}, shape=graph.shape_of(tensor),
                       origin=(producer or readers[0]).origin)
        graph.nodes.insert(graph.nodes.index(producer) + 1 if producer else 0, convert)
        for reader in readers:
            reader.inputs = [convert.output if t == tensor else t for t in reader.inputs]
        if to_int8:
            if tensor not in plan.tensors:
                raise UserError(f"{source}: int8_float_layers: the 8-bit plan has no scale for '{tensor}'")
            converted = graph.tensor(convert.output)
            converted.dtype, converted.quant = "qasymm8", plan.tensors[tensor]
    last = graph.nodes[-1]
    if last.attrs["precision"] == "int8":  # the engine's output is float32: one dequantize ends the network
        graph.nodes.append(Node(f"{last.output}.dequantize", "dequantize", [last.output], {"precision": "int8"},
                                shape=last.shape, origin=last.origin))
    for node in graph.nodes:
        if node.op in ("quantize", "dequantize") or node.attrs["precision"] == "float32":
            continue
        _quantized(graph, node.output, plan)
        _quantize_constants(graph, node, plan)
    return graph


def _quantized_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = significand x 2^(shift - 31), the significand rounded to 31 bits; 0 below
    2^-32."""
    if real == 0:
        return 0, 0
    fraction, shift = math.frexp(real)
    significand = round(fraction * 2 ** 31)  # (halves: never met by a product of float32 scales)
    if significand == 2 ** 31:
        significand, shift = significand // 2, shift + 1
    return (0, 0) if shift < -31 else (significand, shift)


def _tflite_scaled(x: int, real: float) -> int:
    """TFLite's MultiplyByQuantizedMultiplier(x, QuantizeMultiplier(real)): x x 2^left, the doubled product's high
    half rounded (halves up, as SaturatingRoundingDoublingHighMul does), then divided by 2^right rounding halves
    away from zero."""
    significand, shift = _quantized_multiplier(real)
    product = x * 2 ** max(shift, 0) * significand
    high = (product + 2 ** 30) >> 31
    right = max(-shift, 0)
    remainder, threshold = high & (2 ** right - 1), (2 ** right - 1) // 2 + (high < 0)
    return (high >> right) + (remainder > threshold)


def _constant_channels(scales: np.ndarray, q: np.ndarray, bq: np.ndarray, in_scale: float, out_scale: float) -> None:
    """Output channels whose weights are all zero compute one constant, TFLite's requantization of the bias alone (0
    where the multiplier is below 2^-32). Such a channel's scale can be anything: it is set so that the multiplier is
    2^-8 and the bias to 2^8 x that constant, which every kernel requantizes to the same integer (ACL's depthwise
    does not requantize a bias near 2^30 at a multiplier near 2^-26 as TFLite does: found on hand_landmark_lite)."""
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    real = [f32(in_scale) * f32(s) / f32(out_scale) for s in scales]
    q[[_quantized_multiplier(r)[0] == 0 for r in real]] = 0  # the products do not reach the output
    for c in np.flatnonzero(~q.reshape(len(q), -1).any(axis=1)):
        constant = _tflite_scaled(int(bq[c]), real[c])
        scales[c] = f32(f32(out_scale) / f32(in_scale) / 256.0)
        bq[c] = constant * 256


def _quantize_constants(graph: Graph, node: Node, plan: QuantPlan) -> None:
    if not node.params or not graph.constants:
        return
    in_scale = graph.tensor(node.inputs[0]).quant[0]
    weight, bias = f"{node.name}.weight", f"{node.name}.bias"
    w, b = graph.constant(weight), graph.constant(bias)
    if node.op == "conv":
        scales = np.asarray(plan.weight_scales[node.name], np.float64)
        q = int8_weights(w, scales)
        bq = np.round(plan.bias(node.name, b) / (in_scale * scales))
        _constant_channels(scales, q, bq, in_scale, graph.tensor(node.output).quant[0])
        node.attrs["weight_scales"] = [float(s) for s in scales]
        graph.constants[weight] = Constant(q.astype(np.int8), graph.constants[weight].layout)
        graph.constants[bias] = Constant(int32(bq, bias), "O")
    elif node.op == "fc":
        scale, offset = plan.fc_weights[node.name]
        node.attrs["weight_quant"] = (scale, offset)
        graph.constants[weight] = Constant(np.clip(np.round(w / scale) + offset, 0, 255).astype(np.uint8), "OI")
        graph.constants[bias] = Constant(int32(np.round(b / (in_scale * scale)), bias), "O")
