"""Dropout does nothing at inference, except for models trained with non-inverted dropout, whose activations
must be attenuated (scaled by `attenuation`, usually 1 - rate) as the paper does. The factor is folded into the
weights of the convolutions that consume it (scaling a convolution's input scales its weights, not its bias);
only when a consumer is not a convolution does an explicit scale node remain."""

import numpy as np

from neoncc.ir.graph import Graph, Node


def run(graph: Graph) -> Graph:
    for node in [n for n in graph.nodes if n.op == "dropout"]:
        factor = float(node.attrs.get("attenuation", 1.0))
        consumers = graph.consumers(node.output)
        if factor != 1.0 and consumers and all(c.op == "conv" for c in consumers):
            for conv in consumers:
                weight = f"{conv.name}.weight"
                if weight in graph.constants:
                    graph.constants[weight].array = graph.constant(weight) * np.float32(factor)
                conv.attrs.setdefault("folded", []).append(f"x{factor} dropout attenuation folded")
        elif factor != 1.0:
            graph.nodes[graph.nodes.index(node)] = Node(node.name, "scale", node.inputs, {"factor": factor},
                                                        shape=node.shape, origin=node.origin)
            continue
        graph.remove(node)
    return graph
