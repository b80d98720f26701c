"""The lowered graph -> one C++ file of ACL NEON calls (templates/network.cpp.j2, and per node the template its
kernel names in the op registry, templates/ops/*.cpp.j2).

Python decides names, shapes and memory; each op's `lower` (neoncc/ops) fills its template; the templates only spell
C++. The weight table (names, dimensions, order) is the graph's own parameter list, the same one the weight file is
written from (neoncc/weights/pack.py).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import jinja2
import numpy as np

from neoncc import PROJECT_ROOT, ops
from neoncc.codegen.names import class_name, identifier
from neoncc.ir.graph import Graph, Node
from neoncc.ops._common import c_float

TEMPLATE_DIR = PROJECT_ROOT / "templates"
VECTOR_OPS = ("fc", "softmax")  # ops whose output is a vector (ACL reduces dimension 0 for softmax)
PASS_THROUGH = ("dequantize", "quantize", "permute")  # a vector stays a vector through these
DATA_TYPES = {"float32": "F32", "int8": "QSYMM8_PER_CHANNEL", "uint8": "QASYMM8", "int32": "S32"}




def include_of(function: str) -> str:
    """The header that declares a function: ACL's NEON functions, or our own in runtime/."""
    if function.startswith("engine::"):
        return re.sub(r"(?<!^)([A-Z])", r"_\1", function[len("engine::"):]).lower() + ".h"
    return f"arm_compute/runtime/NEON/functions/{function}.h"


def acl_shape(shape: tuple[int, ...], layout: str = "NCHW") -> str:
    """ACL orders dimensions fastest first: (C, H, W) is TensorShape(W, H, C) in NCHW, (C, W, H) in NHWC."""
    if layout == "NHWC" and len(shape) == 3:
        shape = (shape[1], shape[2], shape[0])
    return "TensorShape(" + ", ".join(f"{d}U" for d in reversed(shape)) + ")"


def tensor_info(shape: str, data_type: str = "F32", quantization: str = "", layout: str = "NCHW") -> str:
    info = f"TensorInfo({shape}, 1, DataType::{data_type}{', ' + quantization if quantization else ''})"
    return f"engine::with_layout({info}, DataLayout::NHWC)" if layout == "NHWC" else info


def qinfo(scale_offset: tuple[float, int]) -> str:
    scale, offset = scale_offset
    return f"QuantizationInfo({c_float(scale)}, {offset})"


class _Program:
    """What the templates need, derived from the lowered graph; also the context ops' `lower` methods use."""

    def __init__(self, graph: Graph, environment: jinja2.Environment):
        self.graph = graph
        self.env = environment
        self.tensors: list[dict] = []
        self.views: list[dict] = []
        self.weights: list[dict] = []
        self.scales: list[dict] = []  # per-channel weight scales of 8-bit convolutions
        self.layers: list[dict] = []
        self.functions: set[str] = set()
        self.parent: dict[str, str] = {}  # view variable -> the tensor it is part of
        self._declare(graph.input_name, f"input '{graph.input_name}'")
        for node in graph.nodes:
            self._declare(node.output, f"{node.name} ({node.op})")
        for name, tensor in graph.tensors.items():  # tensors only written through views (copy-free concats)
            if graph.producer(name) is None and name != graph.input_name:
                self._declare(name, f"{name} (written in place by the convolutions before it)")
        for node in graph.nodes:
            self.layers.append(self._layer(node))
        self.output = self.var(graph.output)
        self._plan_lifetimes()

    # -- the context ops lower with ------------------------------------------------------------------------------
    @staticmethod
    def identifier(name: str) -> str:
        return identifier(name)

    def var(self, tensor: str) -> str:
        return identifier(tensor) + "_out_"

    def layout(self, tensor: str) -> str:
        return self.graph.tensor(tensor).layout

    def _is_vector(self, tensor: str) -> bool:
        producer = self.graph.producer(tensor)
        return producer is not None and (producer.op in VECTOR_OPS or
                                         producer.op in PASS_THROUGH and self._is_vector(producer.inputs[0]))

    def _info(self, tensor: str, shape: tuple[int, ...]) -> str:
        t = self.graph.tensor(tensor)
        layout = t.layout if len(shape) == 3 else "NCHW"
        if t.dtype == "qasymm8":
            return tensor_info(acl_shape(shape, layout), "QASYMM8", qinfo(t.quant), layout)
        return tensor_info(acl_shape(shape, layout), layout=layout)

    def vector_of(self, tensor: str, comment: str) -> str:
        """A C-element vector variable for a C x 1 x 1 tensor (what NEReshapeLayer fills for softmax)."""
        var = identifier(tensor) + "_vector_"
        channels = self.graph.shape_of(tensor)[0]
        self.tensors.append({"var": var, "shape": acl_shape((channels,)), "comment": comment,
                             "info": self._info(tensor, (channels,))})
        return var

    def bind_constants(self, node: Node, roles: tuple[str, ...],
                       views: dict[str, tuple[int, ...]] | None = None) -> dict[str, str]:
        """Declares a node's trained tensors, in the order of its parameters, under the template's role names.
        `views` gives a role's tensor another shape of the same elements, as ACL must see it (e.g. a per-channel
        vector (C,) as C x 1 x 1, to broadcast it over an NCHW tensor); the weight file keeps the array's shape."""
        names = {}
        for role, param in zip(roles, node.params):
            constant = self.graph.constants[param.name]
            dims = constant.array.shape
            seen = (views or {}).get(role, dims)
            assert int(np.prod(seen)) == constant.array.size, f"{param.name}: {seen} is not a view of {dims}"
            var = f"{identifier(node.name)}_{role}_"
            self.weights.append({"var": var, "name": param.name, "dims": list(dims),
                                 "info": self._constant_info(node, constant, acl_shape(seen))})
            names[role] = var
        return names

    def _constant_info(self, node: Node, constant, shape: str) -> str:
        layout = node.attrs.get("layout", "NCHW") if constant.layout in ("OHWI", "HWO") else "NCHW"
        kind = DATA_TYPES[str(constant.array.dtype)]
        if kind == "QSYMM8_PER_CHANNEL":
            scales = identifier(node.name) + "_weight_scales"
            self.scales.append({"var": scales, "values": [c_float(s) for s in node.attrs["weight_scales"]]})
            return tensor_info(shape, kind, f"QuantizationInfo({scales})", layout)
        if kind == "QASYMM8":
            return tensor_info(shape, kind, qinfo(node.attrs["weight_quant"]), layout)
        return tensor_info(shape, kind, layout=layout)

    # -- declarations ---------------------------------------------------------------------------------------------
    def _declare(self, tensor: str, comment: str) -> None:
        shape = self.graph.shape_of(tensor)
        shape = (shape[0],) if self._is_vector(tensor) else shape
        view = self.graph.tensor(tensor).view_of
        if view:
            parent, channel = view
            layout = self.graph.tensor(parent).layout
            coordinates = f"{channel}, 0, 0" if layout == "NHWC" else f"0, 0, {channel}"  # ACL's order, fastest first
            self.views.append({"var": self.var(tensor), "parent": self.var(parent), "shape": acl_shape(shape, layout),
                               "coordinates": coordinates})
            self.parent[self.var(tensor)] = self.var(parent)
            return
        self.tensors.append({"var": self.var(tensor), "shape": acl_shape(shape), "comment": comment,
                             "info": self._info(tensor, shape)})

    def _layer(self, node: Node) -> dict:
        op = ops.get(node.op, node)
        impl = op.implementations[node.attrs["impl"]]
        layer = {"template": impl.template, "function": impl.function, "name": node.name,
                 "fn": identifier(node.name) + "_", "inputs": [self.var(t) for t in node.inputs],
                 "output": self.var(node.output), "group": op.group, "summary": op.summary(node),
                 "scratch": impl.scratch, "layout": node.attrs.get("layout", "NCHW")}
        layer.update(op.lower(node, self, impl))
        if layer.get("flat"):
            layer["reads"], layer["writes"] = layer["inputs"] + [layer["flat"]], [layer["flat"], layer["output"]]
        else:
            layer["reads"], layer["writes"] = layer["inputs"], [layer["output"]]
        self.functions |= {impl.function, *impl.extra}
        module = self.env.get_template(f"ops/{impl.template}.cpp.j2").module
        layer["configure_code"] = module.configure(layer)
        layer["members_code"] = module.members(layer) if hasattr(module, "members") else None
        layer["entries_code"] = module.entries(layer) if hasattr(module, "entries") else None
        return layer

    def _plan_lifetimes(self) -> None:
        """Activations between layers share one arena (runtime/activation_arena.h), placed by lifetime: each
        lives from the first layer that writes it to the last layer that reads it. The network's input and output
        stay outside, as the caller writes and reads them around the runs."""
        fixed = {self.var(self.graph.input_name), self.output}
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


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def generate(graph: Graph) -> str:
    """C++ source of the engine's network for a lowered graph (neoncc.passes.lower)."""
    env = _environment()
    program = _Program(graph, env)
    try:
        source = os.path.relpath(graph.source, PROJECT_ROOT)
    except ValueError:
        source = graph.source
    quantized = any(t.dtype == "qasymm8" for t in graph.tensors.values())
    layouts = sorted({t.layout for t in graph.tensors.values()})
    last = next(n for n in reversed(graph.nodes) if n.op not in ("convert", "permute"))  # what computes the output
    return env.get_template("network.cpp.j2").render(probabilities=last.op == "softmax",
        model=graph.name, source=source, class_name=class_name(graph.name),
        headers=sorted({include_of(f) for f in program.functions}), tensors=program.tensors, views=program.views,
        weights=program.weights, layers=program.layers, input=program.var(graph.input_name), output=program.output,
        scales=program.scales, quantized=quantized, layouts=" and ".join(layouts))


def write_atomically(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data if isinstance(data, bytes) else data.encode())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)

