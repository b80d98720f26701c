"""The fire module's concat without a copy: each convolution feeding a channel concat writes straight into its
channel range of the concatenated tensor (an ACL sub-tensor, which only exists along channels in NCHW).

A producer qualifies when it is a convolution whose output feeds nothing but this concat; otherwise the concat
stays a real NEConcatenateLayer.
"""

from neoncc.ir.graph import Graph


def run(graph: Graph) -> Graph:
    for concat in [n for n in graph.nodes if n.op == "concat"]:
        producers = [graph.producer(t) for t in concat.inputs]
        if len(set(concat.inputs)) != len(concat.inputs) or not all(
                p is not None and p.op == "conv" and "write_into" not in p.attrs
                and len(graph.consumers(p.output)) == 1 for p in producers):
            continue
        offset = 0
        for producer in producers:
            producer.attrs["write_into"] = {"tensor": concat.name, "channel": offset}
            offset += producer.shape[0]
        concat.attrs["in_place"] = True
    return graph
