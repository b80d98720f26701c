"""A ReLU or ReLU6 right after a convolution becomes the convolution's fused activation (ACL's
ActivationLayerInfo: RELU, or BOUNDED_RELU with 6), saving a pass over the tensor; it needs the convolution's
output to feed nothing but the activation."""

from neoncc.ir.graph import Graph

ACTIVATIONS = ("relu", "relu6")


def run(graph: Graph) -> Graph:
    for act in [n for n in graph.nodes if n.op in ACTIVATIONS]:
        conv = graph.producer(act.inputs[0])
        if conv is None or conv.op != "conv" or "activation" in conv.attrs:
            continue
        if len(graph.consumers(conv.output)) != 1:
            continue
        conv.attrs["activation"] = act.op
        graph.remove(act)
    return graph
