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

# Which op template renders a node, and the ACL headers it needs.
OP_TEMPLATES = {
    "conv": ("conv", ["NEConvolutionLayer"]),
    "maxpool": ("pool", ["NEPoolingLayer"]),
    "avgpool": ("pool", ["NEPoolingLayer"]),
    "global_avgpool": ("pool", ["NEPoolingLayer"]),
    "softmax": ("softmax", ["NEReshapeLayer", "NESoftmaxLayer"]),
    "relu": ("activation", ["NEActivationLayer"]),
    "scale": ("activation", ["NEActivationLayer"]),
    "concat": ("concat", ["NEConcatenateLayer"]),
}


def identifier(name: str) -> str:
    return re.sub(r"\W", "_", name)


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
        for node in graph.nodes:
            self._add(node)

    @staticmethod
    def var(tensor: str) -> str:
        return identifier(tensor) + "_out_"

    def _output_shape(self, node: Node) -> tuple[int, ...]:
        # Softmax works on a vector: ACL's NESoftmaxLayer reduces along dimension 0 only.
        return (node.shape[0],) if node.op == "softmax" else node.shape

    def _add(self, node: Node) -> None:
        layer = None if node.attrs.get("in_place") else self._layer(node)
        into = node.attrs.get("write_into")
        if into:
            self.views.append({"var": self.var(node.output), "parent": self.var(into["tensor"]),
                               "shape": acl_shape(node.shape), "channel": into["channel"]})
        else:
            kind = "written in place by " + " and ".join(node.inputs) if node.attrs.get("in_place") else node.op
            self.tensors.append({"var": self.var(node.output), "shape": acl_shape(self._output_shape(node)),
                                 "comment": f"{node.name} ({kind})"})
        if layer:
            self.layers.append(layer)

    def _layer(self, node: Node) -> dict:
        template, _ = OP_TEMPLATES[node.op]
        layer = {"template": template, "name": node.name, "fn": identifier(node.name) + "_",
                 "inputs": [self.var(t) for t in node.inputs], "output": self.var(node.output),
                 "group": CONV_GROUP if template in ("conv", "activation", "concat") else POOL_GROUP,
                 "summary": self._summary(node)}
        layer.update(getattr(self, f"_{template}")(node, layer))
        return layer

    def _summary(self, node: Node) -> str:
        """The one-line comment above a layer's code."""
        a = node.attrs
        if node.op == "conv":
            kh, kw = pair(a["kernel"])
            text = f"{a['filters']} filters {kh}x{kw}, stride {a.get('stride', 1)}, pad {a.get('pad', 0)}"
            text += ", ReLU fused" if a.get("activation") == "relu" else ""
            if "write_into" in a:
                first = a["write_into"]["channel"]
                text += f"; writes channels {first}-{first + node.shape[0] - 1} of {a['write_into']['tensor']}"
            return text
        if node.op in ("maxpool", "avgpool"):
            return f"{node.op} {a['kernel']}x{a['kernel']}, stride {a.get('stride', 1)}, {a.get('rounding', 'floor')}"
        return {"global_avgpool": "global average pooling", "softmax": "softmax over the classes",
                "relu": "ReLU", "scale": f"x{a.get('factor')} (dropout attenuation)",
                "concat": "channel concatenation (copying)"}[node.op]

    def _conv(self, node: Node, layer: dict) -> dict:
        weight, bias = node.params
        sy, sx = pair(node.attrs.get("stride", 1))
        top, bottom, left, right = padding(node.attrs.get("pad", 0))
        names = {}
        for param, role in ((weight, "weights"), (bias, "biases")):
            var = f"{identifier(node.name)}_{role}_"
            self.weights.append({"var": var, "name": param.name, "dims": list(param.shape),
                                 "shape": acl_shape(param.shape)})
            names[role] = var
        return {**names, "pad_stride": f"{sx}U, {sy}U, {left}U, {right}U, {top}U, {bottom}U",
                "relu": node.attrs.get("activation") == "relu"}

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

    def _softmax(self, node: Node, layer: dict) -> dict:
        channels, height, width = self.graph.shape_of(node.inputs[0])
        if height * width != 1:
            raise UserError(f"{node.origin}: layer '{node.name}': softmax needs a 1x1 input (pool it first), "
                            f"got {channels}x{height}x{width}")
        flat = identifier(node.name) + "_in_"
        self.tensors.append({"var": flat, "shape": acl_shape((channels,)),
                             "comment": f"{node.inputs[0]} as a vector, for {node.name}"})
        return {"flat": flat, "flatten_fn": identifier(node.name) + "_flatten_"}

    def _activation(self, node: Node, layer: dict) -> dict:
        if node.op == "relu":
            return {"info": "ActivationLayerInfo(ActivationLayerInfo::ActivationFunction::RELU)"}
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
    headers = sorted({h for layer in program.layers for h in OP_TEMPLATES[_op_of(graph, layer)][1]})
    try:
        source = os.path.relpath(graph.source, PROJECT_ROOT)
    except ValueError:
        source = graph.source
    return _environment().get_template("network.cpp.j2").render(
        model=graph.name, source=source, class_name="".join(p.capitalize() for p in graph.name.split("_")),
        headers=headers, tensors=program.tensors, views=program.views, weights=program.weights,
        layers=program.layers, input=program.var(graph.input_name), output=program.var(graph.output))


def _op_of(graph: Graph, layer: dict) -> str:
    return graph.node(layer["name"]).op


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)
