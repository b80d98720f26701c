"""Batch normalization after a convolution is an affine map per output channel, so at inference it folds into
that convolution's weights and bias (done when the weight file is written) and costs nothing at run time."""

from neoncc.errors import UserError
from neoncc.ir.graph import Graph


def run(graph: Graph) -> Graph:
    for bn in [n for n in graph.nodes if n.op == "batchnorm"]:
        conv = graph.producer(bn.inputs[0])
        if conv is None or conv.op != "conv" or "batchnorm" in conv.attrs or len(graph.consumers(conv.output)) != 1:
            raise UserError(f"{bn.origin}: layer '{bn.name}': batchnorm is only supported right after a convolution "
                            f"whose output feeds nothing else (it is folded into that convolution)")
        conv.attrs["batchnorm"] = {"name": bn.name, "eps": float(bn.attrs.get("eps", 1e-5))}
        graph.remove(bn)
    return graph
