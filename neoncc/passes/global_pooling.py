"""Average pooling whose one window covers the whole unpadded input is global pooling: ACL then sizes the
window from the input itself, and importers that spell it as a 13x13 or 14x14 pool get the same engine."""

from neoncc.ir.graph import Graph
from neoncc.ir.shapes import pair, padding


def run(graph: Graph) -> Graph:
    for node in graph.nodes:
        if node.op not in ("avgpool", "maxpool") or node.shape[1:] != (1, 1) or any(padding(node.attrs.get("pad", 0))):
            continue
        _, height, width = graph.shape_of(node.inputs[0])
        if pair(node.attrs["kernel"]) == (height, width):
            node.op, node.attrs = "global_" + node.op, {}
    return graph
