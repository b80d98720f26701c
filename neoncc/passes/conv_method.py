"""Which ACL convolution each layer uses: ACL's own choice (NEConvolutionLayer, "auto") unless a tuning file for
the target names GEMM, Winograd or direct for it. "pointwise" is our own runtime/pointwise_convolution.h. Tuning files are data measured per target
(configs/tuning/<target>/<model>.yaml, written by `python3 -m bench tune`), not code."""

from __future__ import annotations

from pathlib import Path

import yaml

from neoncc.errors import UserError
from neoncc.ir.graph import Graph
from neoncc.ir.shapes import pair, padding

METHODS = ("auto", "gemm", "winograd", "direct", "pointwise")


def load_tuning(path: Path | None) -> dict[str, str]:
    if path is None or not Path(path).is_file():
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    methods = data.get("conv_method", {}) if isinstance(data, dict) else None
    if not isinstance(methods, dict):
        raise UserError(f"{path}: expected a mapping 'conv_method: {{layer: method}}'")
    for layer, method in methods.items():
        if method not in METHODS:
            raise UserError(f"{path}: conv_method.{layer}: '{method}' is not one of {', '.join(METHODS)}")
    return methods


def pointwise_possible(node) -> bool:
    return (pair(node.attrs["kernel"]) == (1, 1) and pair(node.attrs.get("stride", 1)) == (1, 1)
            and not any(padding(node.attrs.get("pad", 0))) and node.attrs.get("groups", 1) == 1)


def run(graph: Graph, tuning: dict[str, str], source: str = "tuning") -> Graph:
    convs = {n.name: n for n in graph.nodes if n.op == "conv"}
    for layer, method in tuning.items():
        if layer not in convs:
            raise UserError(f"{source}: conv_method.{layer}: {graph.name} has no convolution named '{layer}'")
        if convs[layer].attrs.get("groups", 1) > 1 and method != "auto":
            raise UserError(f"{source}: conv_method.{layer}: a depthwise convolution has no '{method}' method")
        if method == "pointwise" and not pointwise_possible(convs[layer]):
            raise UserError(f"{source}: conv_method.{layer}: 'pointwise' needs a 1x1 kernel, stride 1, no padding")
        convs[layer].attrs["method"] = method
    return graph
