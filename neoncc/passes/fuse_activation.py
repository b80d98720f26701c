"""A ReLU or ReLU6 right after a convolution (or a standalone batch normalization) becomes that node's fused
activation (ACL's ActivationLayerInfo: RELU, or BOUNDED_RELU with 6), saving a pass over the tensor; it needs the
producer's output to feed nothing but the activation."""

from neoncc.ir.graph import Graph

ACTIVATIONS = ("relu", "relu6")
FUSES_INTO = ("conv", "batchnorm")


def run(graph: Graph) -> Graph:
    for act in [n for n in graph.nodes if n.op in ACTIVATIONS]:
        producer = graph.producer(act.inputs[0])
        if producer is None or producer.op not in FUSES_INTO or "activation" in producer.attrs:
            continue
        if len(graph.consumers(producer.output)) != 1:
            continue
        producer.attrs["activation"] = act.op
        graph.remove(act)
        # Readers of the activation now read the producer, which stands for the activated tensor.
    return graph
