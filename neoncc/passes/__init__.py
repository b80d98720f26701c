"""Graph passes for inference, each one small rewrite of the IR. `optimize` runs them in order."""

from neoncc.ir.graph import Graph
from neoncc.passes import concat_in_place, fold_batchnorm, fuse_activation, global_pooling, remove_dropout

PIPELINE = [remove_dropout.run, fold_batchnorm.run, fuse_activation.run, global_pooling.run, concat_in_place.run]


def optimize(graph: Graph) -> Graph:
    for run in PIPELINE:
        graph = run(graph)
    return graph
