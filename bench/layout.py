"""NCHW vs NHWC, layer by layer: SqueezeNet's layer kinds cut out as one-layer networks at their real sizes, run
by our engine (NCHW, its tuned convolution methods, copy-free concatenation) and by ACL's graph API in NCHW and in
NHWC (whose channel concatenation copies). Whole-network counts say which layout wins; these say where, which is
what a layout change in the generator has to know.

    python3 -m bench.layout            prints the Markdown table (the benchmark report includes it)

ACL graph counts include copying the input in and the output out inside the counted span (its accessors run
inside Stream::run()), so for ACL they are slight over-estimates, the same for both layouts.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from bench import peers
from bench.engine import build, count_engine
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.ir.shapes import macs
from neoncc.targets import toolchain
from neoncc.tools.preprocess import random_inputs
from neoncc.weights.pack import random_weights

# (network name, the model whose tuning file applies, input (C, H, W), layers): names match the model's layers.
CASES = [
    ("conv1 of v1.0 (7x7/2, 96)", "squeezenet_v1_0", (3, 227, 227),
     [{"name": "conv1", "type": "conv", "filters": 96, "kernel": 7, "stride": 2, "activation": "relu"}]),
    ("conv1 of v1.1 (3x3/2, 64)", "squeezenet_v1_1", (3, 227, 227),
     [{"name": "conv1", "type": "conv", "filters": 64, "kernel": 3, "stride": 2, "activation": "relu"}]),
    ("fire2 of v1.0 (96x55x55 -> 16 -> 64+64)", "squeezenet_v1_0", (96, 55, 55),
     [{"name": "fire2", "type": "fire", "squeeze": 16, "expand": 64}]),
    ("fire9 of v1.0 (512x13x13 -> 64 -> 256+256)", "squeezenet_v1_0", (512, 13, 13),
     [{"name": "fire9", "type": "fire", "squeeze": 64, "expand": 256}]),
]


def measure(log=print) -> list[dict]:
    """Instructions per inference of each case: ours, ACL graph NCHW, ACL graph NHWC (outputs checked)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="neoncc-layout-") as tmp:
        for index, (title, model, shape, layers) in enumerate(CASES):
            work = Path(tmp) / f"case{index}"
            work.mkdir()
            name = f"layout_case{index}"
            description = work / f"{name}.yaml"
            description.write_text(yaml.safe_dump({"name": name, "input": {"name": "data", "shape": list(shape)},
                                                   "layers": layers}))
            graph = load_yaml_model(description)
            np.savez(work / "w.npz", **random_weights(graph, index))
            random_inputs(graph, 1, index).astype("<f4").tofile(work / "input.f32")
            tuning_file = toolchain.tuning_file(toolchain.default_target(), model)
            methods = (yaml.safe_load(tuning_file.read_text()) or {}).get("conv_method", {})
            convs = {n.name for n in graph.nodes if n.op == "conv"}
            (work / "tuning.yaml").write_text(yaml.safe_dump(
                {"conv_method": {k: v for k, v in methods.items() if k in convs}}))
            log(f"layout: {title}")
            ours = count_engine(build(description, work / "ours", work / "w.npz", tuning=work / "tuning.yaml"),
                                work / "input.f32")
            row = {"case": title, "macs": sum(macs(graph, n) for n in graph.nodes), "ours": ours.per_inference}
            for peer in ("acl_graph", "acl_graph_nhwc"):
                result = peers.prepare(peer, description, work / "w.npz", work / peer).run(work / "input.f32",
                                                                                           runs=1, warmup=1)
                peers.check_agreement(peer, result.probabilities, ours.output)
                row[peer] = result.instructions_per_inference
            rows.append(row)
    return rows


def markdown(rows: list[dict]) -> list[str]:
    lines = ["| layer(s) | M MACs | ours, NCHW tuned | ACL graph NCHW | ACL graph NHWC | NHWC / ours |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['macs'] / 1e6:.1f} | {r['ours'] / 1e6:.2f} M | {r['acl_graph'] / 1e6:.2f} M | "
                     f"{r['acl_graph_nhwc'] / 1e6:.2f} M | {r['acl_graph_nhwc'] / r['ours']:.2f} |")
    return lines


if __name__ == "__main__":
    import argparse
    argparse.ArgumentParser(prog="python3 -m bench.layout", description=__doc__.split("\n\n")[0]).parse_args()
    print("\n".join(markdown(measure(lambda message: print(message, file=sys.stderr)))))
