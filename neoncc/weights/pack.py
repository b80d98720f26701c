"""Trained weights for a graph: from a NumPy .npz (keys `<layer>.weight` OIHW and `<layer>.bias`), or seeded
random ones when the user has none; attached to the graph as its constants, which the passes then rewrite."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from neoncc.errors import UserError
from neoncc.ir.graph import Constant, Graph


def random_weights(graph: Graph, seed: int) -> dict[str, np.ndarray]:
    """He-initialised weights, small biases and mild batch-norm statistics, with the classifier scaled so that on
    inputs like the model's own the class scores spread by about 1: the softmax is then neither flat nor
    one-hot, and comparing engines on random weights means something."""
    rng = np.random.default_rng(seed)
    weights = {}
    for node in graph.nodes:
        for param in node.params:
            kind = param.name.rsplit(".", 1)[1]
            if node.op == "batchnorm":
                low, high = {"weight": (0.5, 1.5), "running_var": (0.5, 1.5)}.get(kind, (-0.1, 0.1))
                weights[param.name] = rng.uniform(low, high, param.shape).astype(np.float32)
            elif kind == "weight":
                fan_in = int(np.prod(param.shape[1:]))
                weights[param.name] = rng.normal(0.0, np.sqrt(2.0 / fan_in), param.shape).astype(np.float32)
            else:
                weights[param.name] = rng.uniform(-0.1, 0.1, param.shape).astype(np.float32)
    _calibrate_classifier(graph, weights, seed)
    return weights


def _calibrate_classifier(graph: Graph, weights: dict[str, np.ndarray], seed: int) -> None:
    """Scales the last weighted layer (ReLU, pooling and dropout after it scale along) by 1 / spread of the
    scores that reach the final softmax."""
    from neoncc.reference import torch_graph  # PyTorch only when random weights are asked for
    from neoncc.tools.preprocess import random_inputs

    if graph.nodes[-1].op != "softmax":
        return
    last = [n for n in graph.nodes if n.op in ("conv", "fc")][-1]
    scores = torch_graph.run(graph, weights, random_inputs(graph, 2, seed), tensor=graph.nodes[-1].inputs[0])
    spread = float(scores.std())
    if spread > 0:
        for param in last.params:
            weights[param.name] = (weights[param.name] / np.float32(spread)).astype(np.float32)


def load_npz(graph: Graph, path: Path) -> dict[str, np.ndarray]:
    """The arrays the graph needs from a .npz, checked against the model."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(f"{path}: not a readable NumPy .npz file: {err}") from None
    return check_arrays(graph, arrays, path)


def check_arrays(graph: Graph, arrays: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """Every parameter the model needs, by name, shape and dtype, and nothing it does not know."""
    expected = {p.name: p.shape for p in graph.params}
    missing = [name for name in expected if name not in arrays]
    if missing:
        raise UserError(f"{path}: missing {len(missing)} array(s) that {graph.name} needs: {', '.join(missing[:6])}"
                        + (" ..." if len(missing) > 6 else ""))
    unexpected = sorted(set(arrays) - set(expected))
    if unexpected:
        raise UserError(f"{path}: array(s) {', '.join(unexpected[:6])} match no layer of {graph.name} "
                        f"(expected keys like '{next(iter(expected))}')")
    for name, shape in expected.items():
        array = arrays[name]
        if tuple(array.shape) != tuple(shape):
            raise UserError(f"{path}: '{name}' has shape {list(array.shape)}; {graph.name} expects {list(shape)}")
        if not np.issubdtype(array.dtype, np.floating):
            raise UserError(f"{path}: '{name}' has dtype {array.dtype}; expected float32")
        with np.errstate(over="ignore"):
            if not np.all(np.isfinite(array.astype(np.float32))):  # 1e300 in float64 is +inf in the engine
                raise UserError(f"{path}: '{name}' contains NaN, infinite or beyond-float32 values")
    return {name: arrays[name].astype(np.float32) for name in expected}


LAYOUTS = {4: "OIHW", 2: "OI", 1: "O"}  # the order a trained tensor's dimensions arrive in


def attach(graph: Graph, arrays: dict[str, np.ndarray]) -> Graph:
    """The graph with its trained tensors as constants (float32, in the order the model description implies)."""
    graph.constants = {name: Constant(np.asarray(array, np.float32), LAYOUTS[np.ndim(array)])
                       for name, array in arrays.items()}
    return graph


def engine_tensors(graph: Graph) -> list[tuple[str, np.ndarray]]:
    """The constants of a lowered graph as the engine stores them, in the graph's parameter order (the order the
    generated code's weight table lists them in: neoncc/codegen/cpp.py)."""
    return [(p.name, graph.constant(p.name)) for p in graph.params]
