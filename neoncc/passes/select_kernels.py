"""Which kernel (implementation) runs each node: what a tuning file measured for the target names
(configs/tuning/<target>/<model>.yaml, written by `python3 -m bench tune`: `conv_method: {layer: method}` and
`layout: {layer: NCHW|NHWC}`), else the target's strategy table (toolchains/<target>.yaml `strategy:`), else the
op's first implementation for the node's precision. Tuning files are data measured per target, not code."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from neoncc import ops
from neoncc.errors import UserError
from neoncc.ir.graph import Graph
from neoncc.ops import LAYOUTS


def conv_methods() -> tuple[str, ...]:
    return tuple(k for k in ops.get("conv").implementations if not k.startswith("depthwise"))


def load_tuning(path: Path | None) -> dict:
    """{'conv_method': {layer: method}, 'layout': {layer: layout}} from a tuning file (empty without one)."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("conv_method", {}), dict) \
            or not isinstance(data.get("layout", {}), dict):
        raise UserError(f"{path}: expected mappings 'conv_method: {{layer: method}}' and 'layout: {{layer: NCHW|NHWC}}'")
    for layer, method in data.get("conv_method", {}).items():
        if method not in conv_methods():
            raise UserError(f"{path}: conv_method.{layer}: '{method}' is not one of {', '.join(conv_methods())}")
    for layer, layout in data.get("layout", {}).items():
        if layout not in LAYOUTS:
            raise UserError(f"{path}: layout.{layer}: '{layout}' is not one of {', '.join(LAYOUTS)}")
    float_layers = data.get("int8_float_layers", [])
    if not isinstance(float_layers, list) or not all(isinstance(name, str) for name in float_layers):
        raise UserError(f"{path}: int8_float_layers: expected a list of layer names (kept float32 in an int8 build)")
    if "fingerprint" in data and not isinstance(data["fingerprint"], str):
        raise UserError(f"{path}: fingerprint: expected the model fingerprint `bench tune` wrote (a string)")
    return {"conv_method": data.get("conv_method", {}), "layout": data.get("layout", {}), "source": str(path),
            "fingerprint": data.get("fingerprint"), "int8_float_layers": float_layers}


def applicable(tuning: dict | None, graph: Graph, note=None) -> dict:
    """The tuning, if it was made for this model: a file whose fingerprint (written by `bench tune`) is not the
    model's was measured on another model of the same name; it is set aside with a note, never a failed build."""
    if not tuning or not tuning.get("fingerprint") or tuning["fingerprint"] == graph.meta.get("fingerprint"):
        return tuning or {}
    (note or (lambda text: print(text, file=sys.stderr)))(
        f"note: {tuning['source']} was measured on another model (fingerprint "
        f"{tuning['fingerprint']}) than this '{graph.name}' ({graph.meta.get('fingerprint')}): building with the default "
        "methods")
    return {}


def run(graph: Graph, tuning: dict | None = None, strategy: dict | None = None) -> Graph:
    tuning, strategy = tuning or {}, strategy or {}
    source = tuning.get("source", "tuning")
    convs = {n.name: n for n in graph.nodes if n.op == "conv"}
    for layer, method in tuning.get("conv_method", {}).items():
        if layer not in convs:
            raise UserError(f"{source}: conv_method.{layer}: {graph.name} has no convolution named '{layer}'")
        if method == "auto":
            continue
        impl = ops.get("conv").implementations[method]
        if not impl.accepts(convs[layer]):
            raise UserError(f"{source}: conv_method.{layer}: '{method}' needs {impl.requires[1]}")
    for node in graph.nodes:
        op = ops.get(node.op, node)
        precision = node.attrs.get("precision", "float32")
        method = tuning.get("conv_method", {}).get(node.name)
        if method and method != "auto" and precision in op.implementations[method].precisions:
            node.attrs["method"] = method
            node.attrs["impl"] = method
            node.attrs["chosen_by"] = "tuning"
        else:
            node.attrs["impl"] = op.default_impl(node, precision, strategy)
            node.attrs["chosen_by"] = "strategy" if op.name in strategy.get(precision, {}) else "default"
        if node.attrs["impl"] not in op.implementations:
            raise UserError(f"{node.origin}: layer '{node.name}': the target's strategy names '{node.attrs['impl']}' "
                            f"for {node.op}; it has {', '.join(op.implementations)}")
    return graph
