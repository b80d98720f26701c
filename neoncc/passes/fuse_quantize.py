"""A float32 layer inside an 8-bit network writes its 8-bit output itself: the quantize node after it (inserted by
the quantize pass) goes away, and the layer's output tensor becomes the QASYMM8 tensor it made, on the same grid.
This is the paper's warning about de-/re-quantizing around layers, answered at the store: the float32 tensor in
between is never written, nor read back.

It applies where the layer's kernel quantizes at its store (`Impl.quantized_output`: our packed GEMM and Winograd
convolutions, see runtime/gemm_micro_kernel.h), the quantize node is the layer's only reader, and both tensors
share a layout. It runs after the layout pass (which may put a permute between them) and before concat_in_place, so
that the layer then writes its channel range of a concatenation as the quantize node did."""

from neoncc import ops
from neoncc.ir.graph import Graph


def run(graph: Graph) -> Graph:
    for convert in [n for n in graph.nodes if n.op == "quantize"]:
        producer = graph.producer(convert.inputs[0])
        if producer is None or len(graph.consumers(producer.output)) != 1:
            continue
        impl = ops.get(producer.op).implementations.get(producer.attrs.get("impl"))
        source, target = graph.tensor(producer.output), graph.tensor(convert.output)
        if impl is None or not impl.quantized_output or source.layout != target.layout or source.view_of is not None:
            continue
        source.dtype, source.quant = target.dtype, target.quant
        graph.remove(convert)
    return graph
