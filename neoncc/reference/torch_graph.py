"""A graph executed layer by layer with PyTorch on the host, each node by its op's own reference (neoncc/ops):
for the graph as written (no passes, no folding, no ACL) it is what the engine's output must equal; for an optimised
graph it gives the float tensors an 8-bit engine must cover."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from neoncc import ops
from neoncc.ir.graph import Graph, Node


def tensors(graph: Graph, weights: dict[str, np.ndarray] | None, inputs: np.ndarray,
            node_weights: Callable[[Node], dict[str, torch.Tensor]] | None = None,
            store: Callable[[str, torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of the graph for a batch of inputs (N, C, H, W) in float32; `weights` None: the graph's own
    constants (an optimised graph). Hooks for a variant of the arithmetic (neoncc.quantize.simulate):
    `node_weights(node)` gives the constants that node computes with instead, `store(name, tensor)` what is kept of
    each tensor as it is made (the input's included), which is what later nodes read."""
    if weights is None:
        weights = {name: c.array for name, c in graph.constants.items()}
    w = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in weights.items()}
    values: dict[str, torch.Tensor] = {}

    def keep(name: str, tensor: torch.Tensor) -> None:
        values[name] = store(name, tensor) if store else tensor

    keep(graph.input_name, torch.from_numpy(np.asarray(inputs, np.float32)))
    with torch.no_grad():
        for node in graph.nodes:
            constants = node_weights(node) if node_weights else w
            keep(node.output, ops.get(node.op, node).reference(node, [values[t] for t in node.inputs], constants))
    return values


def run(graph: Graph, weights: dict[str, np.ndarray] | None, inputs: np.ndarray, tensor: str | None = None,
        **hooks) -> np.ndarray:
    """The graph's output (or another tensor) for a batch of inputs, flattened per input; `hooks`: those of
    `tensors`."""
    return tensors(graph, weights, inputs, **hooks)[tensor or graph.output].flatten(1).numpy()
