"""Graph passes for inference, each one small rewrite of the IR. `optimize` runs them in order."""

from neoncc.ir.graph import Graph
from neoncc.passes import concat_in_place, conv_method, fold_batchnorm, fuse_activation, global_pooling, remove_dropout

PIPELINE = [remove_dropout.run, fold_batchnorm.run, fuse_activation.run, global_pooling.run, concat_in_place.run]


def optimize(graph: Graph, tuning: dict[str, str] | None = None, tuning_source: str = "tuning") -> Graph:
    """The inference graph; `tuning` (layer -> convolution method) comes from the target's tuning file."""
    for run in PIPELINE:
        graph = run(graph)
    return conv_method.run(graph, tuning or {}, tuning_source)
