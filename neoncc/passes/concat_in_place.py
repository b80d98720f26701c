"""The fire module's concat without a copy: each convolution feeding a channel concat writes straight into its
channel range of the concatenated tensor (an ACL sub-tensor). ACL's own kernels can write such a range only in NCHW
(sub-tensors cannot be cut along ACL's first dimension for them); in NHWC a channel range is a run of each pixel's
channels, which our kernels that write at any pixel strides (`Impl.strided_output`: the packed GEMM and Winograd
convolutions) fill as well.

The rewrite: the concat node goes away; its producers' output tensors become views (channel ranges) of a tensor
that carries the concat's name, which its consumers read as before. A producer qualifies when it is a convolution
whose output feeds nothing but this concat, and everything is NCHW, or everything is NHWC and each producer's kernel
writes at any strides; otherwise the concat stays a real NEConcatenateLayer. In an 8-bit engine, a quantize node
(our row-by-row engine::Quantization, after a layer kept in float32) qualifies like such a convolution.
"""

from neoncc import ops
from neoncc.ir.graph import Graph, Node, Tensor


def _writes_views(graph: Graph, producer: Node | None, layout: str) -> bool:
    """Whether the producer can write a channel range of a tensor in this layout."""
    if producer is None or producer.op not in ("conv", "quantize") or graph.tensor(producer.output).view_of is not None \
            or graph.tensor(producer.output).layout != layout or len(graph.consumers(producer.output)) != 1:
        return False
    impl = ops.get(producer.op).implementations[producer.attrs["impl"]]
    return (layout == "NCHW" and producer.op == "conv") or impl.strided_output


def run(graph: Graph) -> Graph:
    for concat in [n for n in graph.nodes if n.op == "concat"]:
        producers = [graph.producer(t) for t in concat.inputs]
        layout = graph.tensor(concat.output).layout
        if len(set(concat.inputs)) != len(concat.inputs) or concat.output == graph.output \
                or not all(_writes_views(graph, p, layout) for p in producers):
            continue
        parent = graph.tensor(concat.output)
        offset = 0
        for producer in producers:
            graph.tensor(producer.output).view_of = (concat.output, offset)
            offset += producer.shape[0]
        graph.nodes.remove(concat)
        graph.tensors[concat.output] = Tensor(parent.name, concat.shape, parent.layout, parent.dtype, parent.quant)
    return graph
