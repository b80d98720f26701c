"""Graph passes for inference, each a graph -> graph rewrite in its own module, run in the order below.

`optimize` gives the float graph every build starts from (what an 8-bit plan is calibrated on, and what benchmark
peers export); `lower` then decides precision, kernels and layout, the graph that code generation and the weight
file serialise as they are.
"""

from __future__ import annotations

from neoncc.ir.graph import Graph
from neoncc.passes import (concat_in_place, explicit_bias, fold_batchnorm, fuse_activation, fuse_quantize, global_pooling,
                           layout, quantize, remove_dropout, select_kernels)

FLOAT_PIPELINE = [remove_dropout.run, fold_batchnorm.run, fuse_activation.run, global_pooling.run, explicit_bias.run]


def optimize(graph: Graph) -> Graph:
    """The float inference graph: dropout removed, batch norms folded, activations fused, global pooling."""
    for run in FLOAT_PIPELINE:
        graph = run(graph)
    return graph


def lower(graph: Graph, *, tuning: dict | None = None, plan=None, strategy: dict | None = None,
          layout_mode: str = "nchw", default_layout: str = "NCHW") -> Graph:
    """An optimised graph made ready for code generation: 8 bits when given a plan, a kernel for every node, the
    layout of every tensor (with the conversions it implies), quantizes fused into the float32 layers before them,
    copy-free concatenations."""
    tuning = select_kernels.applicable(tuning, graph)
    if plan is not None:
        graph = quantize.run(graph, plan, tuning.get("int8_float_layers", []), tuning.get("source", "tuning"))
    graph = select_kernels.run(graph, tuning, strategy)
    graph = layout.run(graph, layout_mode, tuning, default_layout)
    graph = fuse_quantize.run(graph)
    return concat_in_place.run(graph)
