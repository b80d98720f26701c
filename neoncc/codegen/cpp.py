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


def include_of(function: str) -> str:
    """The header that declares a function: ACL's NEON functions, or our own in runtime/."""
    if function.startswith("engine::"):
        return re.sub(r"(?<!^)([A-Z])", r"_\1", function[len("engine::"):]).lower() + ".h"
    return f"arm_compute/runtime/NEON/functions/{function}.h"


# ACL functions whose constructor takes a memory manager for their internal buffers.
SCRATCH_USERS = {"NEConvolutionLayer", "NEGEMMConvolutionLayer", "NEWinogradConvolutionLayer",
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


class _Program:
    """What the templates need, derived from the graph."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.tensors: list[dict] = [{"var": self.var(graph.input_name), "shape": acl_shape(graph.input_shape),
                                     "comment": f"input '{graph.input_name}'"}]
        self.views: list[dict] = []
        self.weights: list[dict] = []
        self.layers: list[dict] = []
        self.parent: dict[str, str] = {}  # view -> the tensor it is part of
        for node in graph.nodes:
            self._declare(node)
        self._plan_lifetimes()

    def _plan_lifetimes(self) -> None:
        """Activations between layers share one memory pool by lifetime (ACL's memory manager): each is managed
        from the first layer that writes it and released after the last layer that reads it. The network's input
        and output stay outside the pool, as the caller writes and reads them around the runs."""
        fixed = {self.var(self.graph.input_name), self.var(self.graph.output)}
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for index, layer in enumerate(self.layers):
            for var in (self.parent.get(v, v) for v in layer["writes"]):
                first.setdefault(var, index)
                last[var] = max(last.get(var, index), index)
            for var in (self.parent.get(v, v) for v in layer["reads"]):
                last[var] = index
        for index, layer in enumerate(self.layers):
            layer["manage"] = [v for v in first if first[v] == index and v not in fixed]
            layer["release"] = [v for v in last if last[v] == index and v not in fixed and v in first]
        for tensor in self.tensors:
            tensor["managed"] = tensor["var"] in first and tensor["var"] not in fixed

    @staticmethod
    def var(tensor: str) -> str:
        return identifier(tensor) + "_out_"

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
            self.tensors.append({"var": self.var(node.output), "shape": acl_shape(self._output_shape(node)),
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
        if template == "conv":
            layer["method"] = node.attrs.get("method", "auto")
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
            self.weights.append({"var": var, "name": f"{node.name}.{suffix}", "dims": list(shapes[suffix]),
                                 "shape": acl_shape(acl_shapes[suffix])})
            names[role] = var
        return names

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
        self.tensors.append({"var": flat, "shape": acl_shape((channels,)),
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


def generate(graph: Graph) -> str:
    """C++ source of the engine's network for an optimised graph."""
    program = _Program(graph)
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
        layers=program.layers, input=program.var(graph.input_name), output=program.var(graph.output),
        scratch_users=SCRATCH_USERS)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)
