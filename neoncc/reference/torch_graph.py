"""The model description executed layer by layer with PyTorch on the host, from the graph as written (no passes,
no folding, no ACL): what the engine's output must equal, for validation on target."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from neoncc.ir.graph import Graph, Node
from neoncc.ir.shapes import pair, padding


def _window_input(x: torch.Tensor, node: Node, fill: float) -> torch.Tensor:
    """Explicit (possibly asymmetric) padding, as the engine's padding is given per side."""
    top, bottom, left, right = padding(node.attrs.get("pad", 0))
    return F.pad(x, (left, right, top, bottom), value=fill) if any((top, bottom, left, right)) else x


def _layer(node: Node, xs: list[torch.Tensor], w: dict[str, torch.Tensor]) -> torch.Tensor:
    x = xs[0]
    a = node.attrs
    if node.op == "conv":
        return F.conv2d(_window_input(x, node, 0.0), w[f"{node.name}.weight"], w.get(f"{node.name}.bias"),
                        stride=pair(a.get("stride", 1)), groups=a.get("groups", 1))
    if node.op in ("maxpool", "avgpool"):
        ceil = a.get("rounding", "floor") == "ceil"
        kernel, stride = pair(a["kernel"]), pair(a.get("stride", 1))
        if node.op == "maxpool":
            return F.max_pool2d(_window_input(x, node, float("-inf")), kernel, stride, ceil_mode=ceil)
        return F.avg_pool2d(_window_input(x, node, 0.0), kernel, stride, ceil_mode=ceil)
    if node.op == "batchnorm":
        return F.batch_norm(x, w[f"{node.name}.running_mean"], w[f"{node.name}.running_var"], w[f"{node.name}.weight"],
                            w[f"{node.name}.bias"], training=False, eps=float(a.get("eps", 1e-5)))
    if node.op == "fc":
        return F.linear(x.flatten(1), w[f"{node.name}.weight"], w[f"{node.name}.bias"])[:, :, None, None]
    ops = {
        "relu": lambda: F.relu(x),
        "relu6": lambda: F.relu6(x),
        "global_avgpool": lambda: F.adaptive_avg_pool2d(x, 1),
        "concat": lambda: torch.cat(xs, dim=1),
        "add": lambda: xs[0] + xs[1],
        "dropout": lambda: x * float(a.get("attenuation", 1.0)),
        "softmax": lambda: F.softmax(x.flatten(1), dim=1)[:, :, None, None],
    }
    return ops[node.op]()


def run(graph: Graph, weights: dict[str, np.ndarray], inputs: np.ndarray, tensor: str | None = None) -> np.ndarray:
    """The graph's output (or another tensor) for a batch of inputs (N, C, H, W), flattened per input, in
    float32 like the engine."""
    w = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in weights.items()}
    tensors = {graph.input_name: torch.from_numpy(np.asarray(inputs, np.float32))}
    with torch.no_grad():
        for node in graph.nodes:
            tensors[node.output] = _layer(node, [tensors[t] for t in node.inputs], w)
    return tensors[tensor or graph.output].flatten(1).numpy()
