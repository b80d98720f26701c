"""What an 8-bit plan does to a network's outputs, on the host: the float graph run with PyTorch, every tensor an 8-bit
layer reads or writes rounded to its plan's QASYMM8 grid (clamped to 0..255), every 8-bit layer's weights rounded to
their int8 per-channel (convolutions) or QASYMM8 (fully connected) steps and its bias (less the plan's bias
correction) to int32 at input scale x weight scale. Layers the tuning keeps in float32 (`int8_float_layers`) and the
plan's float tail compute in float32, so a mixed-precision choice can be judged before anything is built. It models
the arithmetic of the 8-bit kernels (which compute exact integer sums and round once per output), not their rounding
of halves, and is meant for choosing: which layers to keep in float32, by how much each one alone moves the outputs
(`sensitivity`). On EfficientNet-Lite0 with ImageNet weights and the 56 photo inputs of `python3 -m bench int8` (the
shipped int8 tuning file, bias correction), the int8 engine's outputs lie 4.6x closer to the simulation's than to
float32's (mean KL divergence 3.7e-4 against 1.7e-3); the top-1 classes differ only where float32 itself calls a
near tie, whose top-1 flips with any error (even PyTorch's batch size)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from neoncc.ir.graph import Graph
from neoncc.quantize.plan import QuantPlan, int8_weights
from neoncc.reference import torch_graph

BATCH = 8


def _on_grid(x: torch.Tensor, quant: tuple[float, int]) -> torch.Tensor:
    scale, offset = quant
    return (torch.clamp(torch.round(x / scale) + offset, 0, 255) - offset) * scale


def _int8_constants(node, plan: QuantPlan, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The node's weights and bias as its 8-bit kernel holds them, back in float32."""
    weight, bias = weights[f"{node.name}.weight"], weights[f"{node.name}.bias"]
    in_scale = plan.tensors[node.inputs[0]][0]
    if node.op == "conv":
        scales = torch.tensor(plan.weight_scales[node.name], dtype=torch.float64).reshape(-1, *[1] * (weight.ndim - 1))
        w = torch.from_numpy(int8_weights(weight.numpy(), plan.weight_scales[node.name])) * scales
        step = in_scale * scales.flatten()
        bias = torch.from_numpy(np.asarray(plan.bias(node.name, bias.numpy()), np.float64))
    else:  # fc: QASYMM8 weights, one (scale, offset)
        scale, offset = plan.fc_weights[node.name]
        w = (torch.clamp(torch.round(weight.double() / scale) + offset, 0, 255) - offset) * scale
        step = torch.full_like(bias.double(), in_scale * scale)
    b = torch.round(bias.double() / step) * step
    return {**weights, f"{node.name}.weight": w.float(), f"{node.name}.bias": b.float()}


def simulate(graph: Graph, plan: QuantPlan, float_layers: Iterable[str], inputs: np.ndarray) -> np.ndarray:
    """The network's outputs (flattened per input) for inputs (N, C, H, W) in mixed precision: `graph` is the float
    graph the plan was calibrated on (neoncc.passes.optimize, constants attached)."""
    keep = set(plan.float_tail) | set(float_layers)
    int8 = {n.name for n in graph.nodes if n.name not in keep}
    on_grid = {t for n in graph.nodes if n.name in int8 for t in (*n.inputs, n.output)}  # what 8-bit layers touch
    weights = {name: torch.from_numpy(np.asarray(c.array, np.float32)) for name, c in graph.constants.items()}
    per_node = {n.name: _int8_constants(n, plan, weights) if n.name in int8 and n.params else weights
                for n in graph.nodes}

    def store(name: str, tensor: torch.Tensor) -> torch.Tensor:
        return _on_grid(tensor, plan.tensors[name]) if name in on_grid else tensor

    return np.concatenate([torch_graph.run(graph, None, inputs[start:start + BATCH],
                                           node_weights=lambda node: per_node[node.name], store=store)
                           for start in range(0, len(inputs), BATCH)])


def kl_divergence(reference: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean over inputs of KL(reference || probabilities), both rows of class probabilities."""
    p, q = (np.maximum(np.asarray(x, np.float64), 1e-30) for x in (reference, probabilities))
    return float((p * (np.log(p) - np.log(q))).sum(1).mean())


def sensitivity(graph: Graph, plan: QuantPlan, layers: Iterable[str], inputs: np.ndarray) -> dict[str, float]:
    """Per layer: how far the outputs move (mean KL divergence from float32's, on `inputs`) when that layer alone
    runs in 8 bits (with the quantization of what it reads and writes) and every other layer in float32. The
    network's output must be class probabilities (a softmax last)."""
    reference = torch_graph.run(graph, None, inputs)
    names = [n.name for n in graph.nodes]
    return {layer: kl_divergence(reference, simulate(graph, plan, [n for n in names if n != layer], inputs))
            for layer in layers}
