"""Which ACL convolution each layer uses: ACL's own choice (NEConvolutionLayer, "auto") unless a tuning file for
the target names GEMM, Winograd or direct for it. Tuning files are data measured per target
(configs/tuning/<target>/<model>.yaml, written by `python3 -m bench tune`), not code."""

from __future__ import annotations

from pathlib import Path

import yaml

from neoncc.errors import UserError
from neoncc.ir.graph import Graph

METHODS = ("auto", "gemm", "winograd", "direct")


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


def run(graph: Graph, tuning: dict[str, str], source: str = "tuning") -> Graph:
    convs = {n.name: n for n in graph.nodes if n.op == "conv"}
    for layer, method in tuning.items():
        if layer not in convs:
            raise UserError(f"{source}: conv_method.{layer}: {graph.name} has no convolution named '{layer}'")
        if convs[layer].attrs.get("groups", 1) > 1 and method != "auto":
            raise UserError(f"{source}: conv_method.{layer}: a depthwise convolution has no '{method}' method")
        convs[layer].attrs["method"] = method
    return graph
