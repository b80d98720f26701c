"""The optimised graph -> one C++ file of ACL NEON calls (templates/network.cpp.j2 and templates/ops/*.cpp.j2).

Python decides names, shapes and which ACL function each node becomes; the templates only spell C++.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import jinja2

from neoncc import PROJECT_ROOT
from neoncc.errors import UserError
from neoncc.ir.graph import Graph, Node
from neoncc.ir.shapes import pair, padding

TEMPLATE_DIR = PROJECT_ROOT / "templates"

# The paper's time breakdown: convolution + ReLU + concat against pooling + softmax.
CONV_GROUP, POOL_GROUP = "conv+relu+concat", "pool+softmax"

# Which op template renders a node, and the ACL function it configures.
OP_TEMPLATES = {
    "conv": ("conv", "NEConvolutionLayer"),
    "depthwise": ("depthwise", "NEDepthwiseConvolutionLayer"),
    "fc": ("fc", "NEFullyConnectedLayer"),
    "add": ("add", "NEArithmeticAddition"),
    "relu6": ("activation", "NEActivationLayer"),
    "maxpool": ("pool", "NEPoolingLayer"),
    "avgpool": ("pool", "NEPoolingLayer"),
    "global_avgpool": ("pool", "NEPoolingLayer"),
    "softmax": ("softmax", "NESoftmaxLayer"),  # after an NEReshapeLayer when its input is not a vector
    "relu": ("activation", "NEActivationLayer"),
    "scale": ("activation", "NEActivationLayer"),
    "concat": ("concat", "NEConcatenateLayer"),
}

# 8-bit engines: one conversion at each end (templates/ops/convert.cpp.j2).
QUANTIZE, DEQUANTIZE = "NEQuantizationLayer", "NEDequantizationLayer"


ACTIVATION_INFO = {
    "relu": "ActivationLayerInfo(ActivationLayerInfo::ActivationFunction::RELU)",
    "relu6": "ActivationLayerInfo(ActivationLayerInfo::ActivationFunction::BOUNDED_RELU, 6.f)",
}


def identifier(name: str) -> str:
    """A C++ name for a layer name: `_blocks.0._depthwise_conv` becomes `blocks_0_depthwise_conv` (no reserved
    double or leading underscores)."""
    return re.sub(r"_+", "_", re.sub(r"\W", "_", name)).strip("_")


# The ACL function of each convolution method (conv_method pass); "auto" lets ACL choose at configure time.
CONV_FUNCTIONS = {"auto": "NEConvolutionLayer", "gemm": "NEGEMMConvolutionLayer",
                  "winograd": "NEWinogradConvolutionLayer", "direct": "NEDirectConvolutionLayer",
                  "pointwise": "engine::PointwiseConvolution"}
# In 8 bits ACL 20.08 offers GEMM-based convolution only (per-channel weights), whose armv7 path is generic;
# "qconv" is our NCHW 8-bit convolution (runtime/quantized_convolution.h), the default; "gemm" pins ACL's.
INT8_CONV_FUNCTIONS = {"qconv": "engine::QuantizedConvolution", "gemm": "NEGEMMConvolutionLayer"}


def include_of(function: str) -> str:
    """The header that declares a function: ACL's NEON functions, or our own in runtime/."""
    if function.startswith("engine::"):
        return re.sub(r"(?<!^)([A-Z])", r"_\1", function[len("engine::"):]).lower() + ".h"
    return f"arm_compute/runtime/NEON/functions/{function}.h"


# ACL functions whose constructor takes a memory manager for their internal buffers.
SCRATCH_USERS = {"NEConvolutionLayer", "engine::QuantizedConvolution", "NEGEMMConvolutionLayer", "NEWinogradConvolutionLayer",
                 "NEDirectConvolutionLayer", "NEDepthwiseConvolutionLayer", "NEFullyConnectedLayer", "NESoftmaxLayer",
                 "engine::PointwiseConvolution"}


def template_of(node: Node) -> str:
    """Which op template renders a node: depthwise convolutions have their own ACL function."""
    if node.op == "conv" and node.attrs.get("groups", 1) > 1:
        return "depthwise"
    return node.op


def acl_shape(shape: tuple[int, ...]) -> str:
    """ACL orders dimensions fastest first: (C, H, W) becomes TensorShape(W, H, C)."""
    return "TensorShape(" + ", ".join(f"{d}U" for d in reversed(shape)) + ")"


def c_float(value: float) -> str:
    """A float literal C++ reads back to the same float32 (9 significant digits), always with '.' or an exponent."""
    text = f"{value:.9g}"
    return (text if any(c in text for c in ".en") else text + ".") + "f"


def tensor_info(shape: str, data_type: str = "F32", quantization: str = "") -> str:
    return f"TensorInfo({shape}, 1, DataType::{data_type}{', ' + quantization if quantization else ''})"


def qasymm8_info(shape: str, scale_offset: tuple[float, int]) -> str:
    scale, offset = scale_offset
    return tensor_info(shape, "QASYMM8", f"QuantizationInfo({c_float(scale)}, {offset})")


class _Program:
    """What the templates need, derived from the graph."""

    def __init__(self, graph: Graph, plan=None):
        self.graph = graph
        self.plan = plan  # neoncc.quantize.plan.QuantPlan for an 8-bit engine, None for float32
        self.alias: dict[str, str] = {}  # graph tensor -> the variable its consumers read, when converted
        input_shape = acl_shape(graph.input_shape)
        self.tensors: list[dict] = [{"var": self.var(graph.input_name), "shape": input_shape,
                                     "info": tensor_info(input_shape), "comment": f"input '{graph.input_name}'"}]
        self.views: list[dict] = []
        self.weights: list[dict] = []
        self.scales: list[dict] = []  # per-channel weight scales of 8-bit convolutions
        self.layers: list[dict] = []
        self.parent: dict[str, str] = {}  # view -> the tensor it is part of
        if plan:
            self._convert(QUANTIZE, graph.input_name, graph.input_shape, "quantize", "_q_")
        tail = plan.float_tail if plan else []
        for node in graph.nodes:
            if tail and node.name == tail[0]:  # the float32 tail begins: its input is de-quantized, once
                producer = graph.producer(node.inputs[0])
                shape = self._output_shape(producer) if producer else graph.shape_of(node.inputs[0])
                self._convert(DEQUANTIZE, node.inputs[0], shape, "dequantize", "_f32_")
            self._declare(node)
        if plan and not tail:
            self._convert(DEQUANTIZE, graph.output, self._output_shape(graph.nodes[-1]), "dequantize", "_f32_")
        self.output = self.var(graph.output)
        self._plan_lifetimes()

    def _convert(self, function: str, tensor: str, shape: tuple[int, ...], kind: str, suffix: str) -> None:
        """The 8-bit engine's only conversions: the input to QASYMM8, and the last 8-bit tensor to float32."""
        source = self.var(tensor)
        var = identifier(tensor) + suffix
        shape_text = acl_shape(shape)
        info = qasymm8_info(shape_text, self.plan.tensors[tensor]) if function == QUANTIZE else tensor_info(shape_text)
        self.tensors.append({"var": var, "shape": shape_text, "info": info,
                             "comment": f"{tensor} {'in 8 bits' if function == QUANTIZE else 'in float32'}"})
        name = f"{tensor}.{kind}"
        self.layers.append({"template": "convert", "function": function, "name": name, "fn": identifier(name) + "_",
                            "inputs": [source], "output": var, "reads": [source], "writes": [var],
                            "group": CONV_GROUP if function == QUANTIZE else POOL_GROUP,
                            "summary": ("float32 to QASYMM8, once for the whole network" if function == QUANTIZE
                                        else "QASYMM8 to float32, once for the whole network")})
        self.alias[tensor] = var

    def _plan_lifetimes(self) -> None:
        """Activations between layers share one arena (runtime/activation_arena.h), placed by lifetime: each
        lives from the first layer that writes it to the last layer that reads it. The network's input and output
        stay outside, as the caller writes and reads them around the runs."""
        fixed = {identifier(self.graph.input_name) + "_out_", self.output}
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for index, layer in enumerate(self.layers):
            for var in (self.parent.get(v, v) for v in layer["writes"]):
                first.setdefault(var, index)
                last[var] = max(last.get(var, index), index)
            for var in (self.parent.get(v, v) for v in layer["reads"]):
                last[var] = index
        for tensor in self.tensors:
            var = tensor["var"]
            tensor["managed"] = var in first and var not in fixed
            if tensor["managed"]:
                tensor["lifetime"] = (first[var], last[var])

    def var(self, tensor: str) -> str:
        """The variable a consumer of the tensor reads (its converted copy, if any)."""
        return self.alias.get(tensor, identifier(tensor) + "_out_")

    def _info(self, tensor: str, shape: str) -> str:
        if self.plan and tensor in self.plan.tensors:
            return qasymm8_info(shape, self.plan.tensors[tensor])
        return tensor_info(shape)

    @staticmethod
    def _output_shape(node: Node) -> tuple[int, ...]:
        # Vectors: a fully connected layer's output, and softmax's (ACL's NESoftmaxLayer reduces dimension 0).
        return (node.shape[0],) if node.op in ("softmax", "fc") else node.shape

    def _declare(self, node: Node) -> None:
        layer = None if node.attrs.get("in_place") else self._layer(node)
        into = node.attrs.get("write_into")
        if into:
            self.views.append({"var": self.var(node.output), "parent": self.var(into["tensor"]),
                               "shape": acl_shape(node.shape), "channel": into["channel"]})
            self.parent[self.var(node.output)] = self.var(into["tensor"])
        else:
            kind = "written in place by " + " and ".join(node.inputs) if node.attrs.get("in_place") else node.op
            shape = acl_shape(self._output_shape(node))
            self.tensors.append({"var": self.var(node.output), "shape": shape, "info": self._info(node.output, shape),
                                 "comment": f"{node.name} ({kind})"})
        if layer:
            self.layers.append(layer)

    def _layer(self, node: Node) -> dict:
        template, function = OP_TEMPLATES[template_of(node)]
        layer = {"template": template, "function": function, "name": node.name, "fn": identifier(node.name) + "_",
                 "inputs": [self.var(t) for t in node.inputs], "output": self.var(node.output),
                 "group": POOL_GROUP if template in ("pool", "softmax") else CONV_GROUP,
                 "summary": self._summary(node)}
        layer.update(getattr(self, f"_{template}")(node, layer))
        if layer.get("flat"):
            layer["reads"], layer["writes"] = layer["inputs"] + [layer["flat"]], [layer["flat"], layer["output"]]
        else:
            layer["reads"], layer["writes"] = layer["inputs"], [layer["output"]]
        if self.plan and node.op == "global_avgpool":
            layer["function"] = "engine::QuantizedGlobalAveragePooling"  # ACL's 8-bit path is generic on armv7
        if self.plan and node.op == "add":
            layer["function"] = "engine::QuantizedAddition"  # ACL's 8-bit addition costs ~100x float's on armv7
        if template == "conv":
            layer["method"] = node.attrs.get("method", "auto")
            if self.plan:
                layer["method"] = "gemm" if layer["method"] == "gemm" else "qconv"
                layer["function"] = INT8_CONV_FUNCTIONS[layer["method"]]
            else:
                layer["function"] = CONV_FUNCTIONS[layer["method"]]
        return layer

    def _summary(self, node: Node) -> str:
        """The one-line comment above a layer's code."""
        a = node.attrs
        if node.op == "conv":
            kh, kw = pair(a["kernel"])
            kind = "depthwise " if template_of(node) == "depthwise" else ""
            text = f"{a['filters']} {kind}filters {kh}x{kw}, stride {a.get('stride', 1)}, pad {a.get('pad', 0)}"
            text += ", batch norm folded" if "batchnorm" in a else ""
            text += f", {a['activation']} fused" if "activation" in a else ""
            text += f", {a['method']} (tuned)" if a.get("method", "auto") != "auto" else ""
            if "write_into" in a:
                first = a["write_into"]["channel"]
                text += f"; writes channels {first}-{first + node.shape[0] - 1} of {a['write_into']['tensor']}"
            return text
        if node.op in ("maxpool", "avgpool"):
            return f"{node.op} {a['kernel']}, stride {a.get('stride', 1)}, pad {a.get('pad', 0)}, " \
                   f"{a.get('rounding', 'floor')}"
        return {"global_avgpool": "global average pooling", "softmax": "softmax over the classes",
                "relu": "ReLU", "relu6": "ReLU6", "scale": f"x{a.get('factor')} (dropout attenuation)",
                "concat": "channel concatenation (copying)", "add": f"{' + '.join(node.inputs)}",
                "fc": f"fully connected, {a.get('units')} units"}[node.op]

    def _bind(self, node: Node, shapes: dict[str, tuple[int, ...]], acl_shapes: dict[str, tuple[int, ...]]) -> dict:
        """Declares a node's trained tensors (engine order: weights, then biases) and returns their C++ names."""
        names = {}
        for role, suffix in (("weights", "weight"), ("biases", "bias")):
            var = f"{identifier(node.name)}_{role}_"
            shape = acl_shape(acl_shapes[suffix])
            self.weights.append({"var": var, "name": f"{node.name}.{suffix}", "dims": list(shapes[suffix]),
                                 "shape": shape, "info": self._weight_info(node, suffix, shape)})
            names[role] = var
        return names

    def _weight_info(self, node: Node, suffix: str, shape: str) -> str:
        """float32; in 8 bits: int8 per output channel (convolutions) or QASYMM8 (fully connected), and int32
        biases, whose scale (input scale x weight scale) ACL derives itself."""
        if not self.plan or node.name in self.plan.float_tail:
            return tensor_info(shape)
        if suffix == "bias":
            return tensor_info(shape, "S32")
        if node.op == "fc":
            return qasymm8_info(shape, self.plan.fc_weights[node.name])
        scales = identifier(node.name) + "_weight_scales"
        self.scales.append({"var": scales, "layer": node.name, "values": [c_float(s) for s in
                                                                            self.plan.weight_scales[node.name]]})
        return tensor_info(shape, "QSYMM8_PER_CHANNEL", f"QuantizationInfo({scales})")

    def _conv(self, node: Node, layer: dict) -> dict:
        weight = node.params[0].shape
        sy, sx = pair(node.attrs.get("stride", 1))
        top, bottom, left, right = padding(node.attrs.get("pad", 0))
        shapes = {"weight": weight, "bias": (weight[0],)}
        # A depthwise kernel is [kw, kh, channels] in ACL: OIHW with I = 1, one dimension fewer.
        acl = {"weight": (weight[0], *weight[2:]) if template_of(node) == "depthwise" else weight,
               "bias": (weight[0],)}
        return {**self._bind(node, shapes, acl), "pad_stride": f"{sx}U, {sy}U, {left}U, {right}U, {top}U, {bottom}U",
                "act": ACTIVATION_INFO.get(node.attrs.get("activation")),
                "multiplier": weight[0] // self.graph.shape_of(node.inputs[0])[0]}

    def _fc(self, node: Node, layer: dict) -> dict:
        shapes = {p.name.rsplit(".", 1)[1]: p.shape for p in node.params}
        return self._bind(node, shapes, shapes)

    def _add(self, node: Node, layer: dict) -> dict:
        return {}

    def _pool(self, node: Node, layer: dict) -> dict:
        kind = "MAX" if node.op == "maxpool" else "AVG"
        if node.op == "global_avgpool":
            return {"info": f"PoolingLayerInfo(PoolingType::{kind}, DataLayout::NCHW)"}
        kh, kw = pair(node.attrs["kernel"])
        sy, sx = pair(node.attrs.get("stride", 1))
        top, bottom, left, right = padding(node.attrs.get("pad", 0))
        rounding = node.attrs.get("rounding", "floor").upper()
        return {"info": f"PoolingLayerInfo(PoolingType::{kind}, Size2D({kw}U, {kh}U), DataLayout::NCHW, "
                        f"PadStrideInfo({sx}U, {sy}U, {left}U, {right}U, {top}U, {bottom}U, "
                        f"DimensionRoundingType::{rounding}))"}

    _depthwise = _conv

    def _softmax(self, node: Node, layer: dict) -> dict:
        producer = self.graph.producer(node.inputs[0])
        if producer is not None and producer.op == "fc":
            return {"flat": None}
        channels, height, width = self.graph.shape_of(node.inputs[0])
        if height * width != 1:
            raise UserError(f"{node.origin}: layer '{node.name}': softmax needs a 1x1 input (pool it first), "
                            f"got {channels}x{height}x{width}")
        flat = identifier(node.name) + "_in_"
        self.tensors.append({"var": flat, "shape": acl_shape((channels,)), "info": tensor_info(acl_shape((channels,))),
                             "comment": f"{node.inputs[0]} as a vector, for {node.name}"})
        return {"flat": flat, "flatten_fn": identifier(node.name) + "_flatten_"}

    def _activation(self, node: Node, layer: dict) -> dict:
        if node.op in ACTIVATION_INFO:
            return {"info": ACTIVATION_INFO[node.op]}
        return {"info": f"ActivationLayerInfo(ActivationLayerInfo::ActivationFunction::LINEAR, "
                        f"{node.attrs['factor']!r}f, 0.f)"}

    def _concat(self, node: Node, layer: dict) -> dict:
        return {}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def generate(graph: Graph, plan=None) -> str:
    """C++ source of the engine's network for an optimised graph; 8-bit when given a quantization plan."""
    program = _Program(graph, plan)
    functions = {layer["function"] for layer in program.layers}
    functions |= {"NEReshapeLayer"} if any(layer.get("flat") for layer in program.layers) else set()
    headers = sorted(include_of(f) for f in functions)
    try:
        source = os.path.relpath(graph.source, PROJECT_ROOT)
    except ValueError:
        source = graph.source
    return _environment().get_template("network.cpp.j2").render(
        model=graph.name, source=source, class_name="".join(p.capitalize() for p in graph.name.split("_")),
        headers=headers, tensors=program.tensors, views=program.views, weights=program.weights,
        layers=program.layers, input=identifier(graph.input_name) + "_out_", output=program.output,
        scratch_users=SCRATCH_USERS, scales=program.scales, quantized=plan is not None)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)
