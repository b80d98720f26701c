"""Choose each convolution's method (ACL's own choice, GEMM, Winograd, direct, or our pointwise matrix product)
by counting: build the engine once per method (every layer that method
supports switched to it), count guest instructions per layer, keep per layer the cheapest, then check the tuned
engine as a whole against ACL's own choice. The result is data, configs/tuning/<target>/<model>.yaml, which the
build picks up; it is written only when the counts say it pays.

    python3 -m bench tune configs/models/squeezenet_v1_1.yaml
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import yaml

from bench.engine import build, count_engine
from neoncc import PROJECT_ROOT
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.ir.graph import Node
from neoncc.ir.shapes import pair
from neoncc.passes.conv_method import pointwise_possible
from neoncc.tools.preprocess import random_inputs


def supports(method: str, node: Node) -> bool:
    """ACL 20.08's documented limits (its validate() has the last word at configure time)."""
    kernel, stride = pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1))
    if node.attrs.get("groups", 1) > 1:
        return False
    if method == "direct":
        return kernel[0] == kernel[1] and kernel[0] in (1, 3, 5) and max(stride) <= 3
    if method == "winograd":
        return kernel in ((3, 3), (5, 5), (3, 1), (1, 3), (5, 1), (1, 5)) and stride == (1, 1)
    if method == "pointwise":
        return pointwise_possible(node)
    return method == "gemm"


def _cheapest(node: Node, counts: dict) -> str:
    """ACL's own choice unless another method is at least 1 % cheaper (smaller differences are not worth a pin)."""
    others = [(counts[m].per_layer[node.name], m) for m in counts if m != "auto" and supports(m, node)]
    if not others:
        return "auto"
    cost, method = min(others)
    return method if cost < 0.99 * counts["auto"].per_layer[node.name] else "auto"


def tune(model: Path, log=print) -> Path | None:
    graph = load_yaml_model(model)
    convs = [n for n in graph.nodes if n.op == "conv"]
    out = PROJECT_ROOT / "configs" / "tuning" / "armv7" / f"{graph.name}.yaml"
    with tempfile.TemporaryDirectory(prefix="neoncc-tune-") as work:
        work = Path(work)
        random_inputs(graph, 1, 0).astype("<f4").tofile(work / "input.f32")
        counts = {}
        for method in ("auto", "gemm", "direct", "winograd", "pointwise"):
            chosen = {n.name: method for n in convs if method == "auto" or supports(method, n)}
            if not chosen:
                continue
            (work / f"{method}.yaml").write_text(yaml.safe_dump({"conv_method": chosen}))
            binary = build(model, work / method, tuning=work / f"{method}.yaml")
            counts[method] = count_engine(binary, work / "input.f32")
            log(f"{graph.name}: every layer {method}: {counts[method].per_inference / 1e6:.1f} M instructions")
        best = {n.name: _cheapest(n, counts) for n in convs}
        tuning = {"conv_method": {name: method for name, method in best.items() if method != "auto"}}
        (work / "tuned.yaml").write_text(yaml.safe_dump(tuning))
        tuned = count_engine(build(model, work / "tuned", tuning=work / "tuned.yaml"), work / "input.f32")
    auto = counts["auto"]
    gain = auto.per_inference - tuned.per_inference
    log(f"{graph.name}: tuned {tuned.per_inference / 1e6:.1f} M vs ACL's choice {auto.per_inference / 1e6:.1f} M")
    if not np.allclose(tuned.output, auto.output, rtol=1e-4, atol=1e-6):
        raise AssertionError(f"{graph.name}: the tuned engine's output differs from ACL's choice")
    if gain <= 0 or not tuning["conv_method"]:
        log(f"{graph.name}: no gain; {out.relative_to(PROJECT_ROOT)} not written")
        return None
    lines = [f"# Convolution methods for {graph.name} on armv7, chosen by `python3 -m bench tune` from guest-instruction",
             f"# counts under qemu-user (single thread): {tuned.per_inference:,} instructions per inference with",
             f"# this file, {auto.per_inference:,} with ACL's own choice ({100 * gain / auto.per_inference:.1f} % fewer).",
             "# Per layer (M instructions): " + ", ".join(m for m in counts), "conv_method:"]
    for name, method in tuning["conv_method"].items():
        per_method = ", ".join(f"{counts[m].per_layer.get(name, 0) / 1e6:.2f}" if m == "auto" or supports(m, graph.node(name))
                               else "-" for m in counts)
        lines.append(f"  {name}: {method}{' ' * max(1, 24 - len(name) - len(method))}# {per_method}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(out)
    log(f"{graph.name}: wrote {out.relative_to(PROJECT_ROOT)}")
    return out
