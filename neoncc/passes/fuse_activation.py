"""A ReLU right after a convolution becomes the convolution's fused activation (ACL's ActivationLayerInfo),
saving a pass over the tensor; it needs the convolution's output to feed nothing but the ReLU."""

from neoncc.ir.graph import Graph


def run(graph: Graph) -> Graph:
    for relu in [n for n in graph.nodes if n.op == "relu"]:
        conv = graph.producer(relu.inputs[0])
        if conv is None or conv.op != "conv" or "activation" in conv.attrs:
            continue
        if len(graph.consumers(conv.output)) != 1:
            continue
        conv.attrs["activation"] = "relu"
        graph.remove(relu)
    return graph
