"""Batch normalization after a convolution is an affine map per output channel, so at inference it folds into
that convolution's weights and bias and costs nothing at run time. One that follows anything else stays, and runs
as a per-channel scale and shift (NEBatchNormalizationLayer)."""

import numpy as np

from neoncc.ir.graph import Constant, Graph, Param


def run(graph: Graph) -> Graph:
    for bn in [n for n in graph.nodes if n.op == "batchnorm"]:
        conv = graph.producer(bn.inputs[0])
        if conv is None or conv.op != "conv" or "activation" in conv.attrs or len(graph.consumers(conv.output)) != 1:
            continue
        if graph.constants:
            _fold(graph, conv, bn)
        conv.attrs.setdefault("folded", []).append("batch norm folded")
        conv.attrs["bias"] = True
        conv.params = [Param(f"{conv.name}.weight", conv.params[0].shape), Param(f"{conv.name}.bias", (conv.shape[0],))]
        graph.remove(bn)
    return graph


def _fold(graph: Graph, conv, bn) -> None:
    c = {role: graph.constants.pop(f"{bn.name}.{role}").array.astype(np.float64)
         for role in ("weight", "bias", "running_mean", "running_var")}
    weight = graph.constant(f"{conv.name}.weight")
    bias = graph.constants[f"{conv.name}.bias"].array if f"{conv.name}.bias" in graph.constants else \
        np.zeros(weight.shape[0], np.float32)
    factor = c["weight"] / np.sqrt(c["running_var"] + float(bn.attrs.get("eps", 1e-5)))
    graph.constants[f"{conv.name}.weight"] = Constant((weight * factor.reshape(-1, 1, 1, 1)).astype(np.float32), "OIHW")
    graph.constants[f"{conv.name}.bias"] = Constant(((bias - c["running_mean"]) * factor + c["bias"]).astype(np.float32),
                                                    "O")
