"""The fire module's concat without a copy: each convolution feeding a channel concat writes straight into its
channel range of the concatenated tensor (an ACL sub-tensor, which only exists along channels in NCHW).

The rewrite: the concat node goes away; its producers' output tensors become views (channel ranges) of a tensor
that carries the concat's name, which its consumers read as before. A producer qualifies when it is a convolution
whose output feeds nothing but this concat, and everything is NCHW; otherwise the concat stays a real
NEConcatenateLayer.
"""

from neoncc.ir.graph import Graph, Tensor


def run(graph: Graph) -> Graph:
    for concat in [n for n in graph.nodes if n.op == "concat"]:
        producers = [graph.producer(t) for t in concat.inputs]
        if len(set(concat.inputs)) != len(concat.inputs) or graph.tensor(concat.output).layout != "NCHW" \
                or concat.output == graph.output or not all(
                p is not None and p.op == "conv" and graph.tensor(p.output).view_of is None
                and graph.tensor(p.output).layout == "NCHW" and len(graph.consumers(p.output)) == 1
                for p in producers):
            continue
        parent = graph.tensor(concat.output)
        offset = 0
        for producer in producers:
            graph.tensor(producer.output).view_of = (concat.output, offset)
            offset += producer.shape[0]
        graph.nodes.remove(concat)
        graph.tensors[concat.output] = Tensor(parent.name, concat.shape, parent.layout, parent.dtype, parent.quant)
    return graph
