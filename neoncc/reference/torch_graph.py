"""A graph executed layer by layer with PyTorch on the host, each node by its op's own reference (neoncc/ops):
for the graph as written (no passes, no folding, no ACL) it is what the engine's output must equal; for an optimised
graph it gives the float tensors an 8-bit engine must cover."""

from __future__ import annotations

import numpy as np
import torch

from neoncc import ops
from neoncc.ir.graph import Graph


def tensors(graph: Graph, weights: dict[str, np.ndarray] | None, inputs: np.ndarray) -> dict[str, torch.Tensor]:
    """Every tensor of the graph for a batch of inputs (N, C, H, W) in float32; `weights` None: the graph's own
    constants (an optimised graph)."""
    if weights is None:
        weights = {name: c.array for name, c in graph.constants.items()}
    w = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in weights.items()}
    values = {graph.input_name: torch.from_numpy(np.asarray(inputs, np.float32))}
    with torch.no_grad():
        for node in graph.nodes:
            values[node.output] = ops.get(node.op, node).reference(node, [values[t] for t in node.inputs], w)
    return values


def run(graph: Graph, weights: dict[str, np.ndarray] | None, inputs: np.ndarray, tensor: str | None = None) -> np.ndarray:
    """The graph's output (or another tensor) for a batch of inputs, flattened per input."""
    return tensors(graph, weights, inputs)[tensor or graph.output].flatten(1).numpy()
