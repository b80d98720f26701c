"""Every convolution gets a bias constant (zeros when the model has none): ACL adds it in the same output stage
as the activation, and the engine's weight table then has one shape for every convolution."""

import numpy as np

from neoncc.ir.graph import Constant, Graph, Param


def run(graph: Graph) -> Graph:
    for node in graph.nodes:
        if node.op != "conv" or f"{node.name}.bias" in {p.name for p in node.params}:
            continue
        node.params.append(Param(f"{node.name}.bias", (node.shape[0],)))
        node.attrs["bias"] = True
        if graph.constants:
            graph.constants[f"{node.name}.bias"] = Constant(np.zeros(node.shape[0], np.float32), "O")
    return graph
