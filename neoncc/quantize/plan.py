"""The 8-bit plan of an optimised graph: one QASYMM8 (scale, offset) per activation tensor, measured on a
calibration set, and one symmetric int8 scale per output channel of every convolution.

The constraints are what keep the engine in 8 bits without copies or re-quantization:
 - max/average/global pooling and ReLU keep their input's quantization (they commute with it);
 - both expand convolutions of a fire module write into one concatenated tensor, so they share its
   quantization, measured over the concatenated channels together;
 - ReLU/ReLU6 fused into a convolution are the clamp of its output stage (the range starts at 0);
 - the network's tail of classifier layers (a fully connected layer and the softmax) runs in float32 after the one
   de-quantization: a 1000 x 1280 classifier is a small share of the work, and per-tensor 8-bit weights (all ACL
   20.08 takes there) would put its outliers' error straight into the class scores.
A calibrated plan also corrects each 8-bit convolution's bias for the mean error its rounded weights make
(`bias_corrections`; the bias correction of Nagel et al., "Data-Free Quantization Through Weight Equalization and
Bias Correction", ICCV 2019, with channel means measured on the calibration inputs): the error of output channel o is
sum_j (w_q - w)[o, j] x[j], whose expected value over the calibration inputs, sum_j (w_q - w)[o, j] E[x_j], is
subtracted from the bias before it is rounded to int32. A filter with few weights (a depthwise one, a small
convolution) does not average its rounding errors out, and each layer's shift adds up through the network.
The plan is data (JSON next to the engine), so the build's code generator and weight packer agree on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neoncc import ops
from neoncc.errors import UserError
from neoncc.ir.graph import Graph

METHODS = ("minmax", "percentile")
DEFAULT_PERCENTILE = 99.99
BATCH = 8


def _quant(node) -> str | None:
    """How the op behaves in 8 bits (neoncc/ops): its output keeps its input's quantization ("inherit": exact in
    8 bits, like max or ReLU, or a mean of equally scaled values), gets its own range ("own"), runs in float32 after
    the de-quantization ("float"), or has no 8-bit path (None)."""
    return ops.get(node.op, node).quant


@dataclass
class QuantPlan:
    model: str
    method: str
    percentile: float | None
    calibration_inputs: int
    tensors: dict[str, tuple[float, int]] = field(default_factory=dict)   # tensor -> (scale, offset), QASYMM8
    weight_scales: dict[str, list[float]] = field(default_factory=dict)   # conv -> per output channel
    fc_weights: dict[str, tuple[float, int]] = field(default_factory=dict)  # fc -> (scale, offset), QASYMM8
    float_tail: list[str] = field(default_factory=list)  # the last layers, run in float32
    bias_corrections: dict[str, list[float]] = field(default_factory=dict)  # conv -> per output channel

    def to_json(self) -> str:
        return json.dumps({"model": self.model, "method": self.method, "percentile": self.percentile,
                           "calibration_inputs": self.calibration_inputs,
                           "tensors": {k: list(v) for k, v in self.tensors.items()},
                           "weight_scales": self.weight_scales,
                           "fc_weights": {k: list(v) for k, v in self.fc_weights.items()},
                           "float_tail": self.float_tail, "bias_corrections": self.bias_corrections}, indent=1) + "\n"

    @classmethod
    def read(cls, path: Path) -> "QuantPlan":
        data = json.loads(Path(path).read_text())
        return cls(data["model"], data["method"], data["percentile"], data["calibration_inputs"],
                   {k: (float(s), int(o)) for k, (s, o) in data["tensors"].items()}, data["weight_scales"],
                   {k: (float(s), int(o)) for k, (s, o) in data["fc_weights"].items()}, data["float_tail"],
                   data.get("bias_corrections", {}))

    def bias(self, layer: str, bias: np.ndarray) -> np.ndarray:
        """The float bias an 8-bit layer rounds to int32: its own, less the plan's correction (if any)."""
        correction = self.bias_corrections.get(layer)
        return bias if correction is None else np.asarray(bias, np.float64) - np.asarray(correction, np.float64)


def check_supported(graph: Graph) -> None:
    """Refuses, naming the layer, what has no 8-bit path here (before any calibration work is spent)."""
    for node in graph.nodes:
        impls = ops.get(node.op, node).implementations.values()
        if _quant(node) is None or (_quant(node) != "float" and not any("int8" in i.precisions for i in impls)):
            raise UserError(f"{node.origin}: layer '{node.name}': '{node.op}' has no 8-bit implementation; "
                            "build this model with precision=float32")
        if _quant(node) == "float" and node is not graph.nodes[-1]:
            raise UserError(f"{node.origin}: layer '{node.name}': softmax is only supported as the last layer "
                            "in 8 bits (it runs in float32 after the single de-quantization)")


def float_tail(graph: Graph) -> list[str]:
    """The trailing softmax and the fully connected layers right before it: run in float32."""
    tail = []
    for node in reversed(graph.nodes):
        if (_quant(node) == "float" or node.op == "fc") and not (_quant(node) == "float" and tail):
            tail.insert(0, node.name)
        else:
            break
    return tail


def qasymm8(low: float, high: float) -> tuple[float, int]:
    """Scale and zero point of an 8-bit range covering [low, high] and 0 exactly (padding and ReLU need zero)."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if high - low < 1e-12:
        high = low + 1e-6
    scale = (high - low) / 255.0
    return scale, int(np.clip(round(-low / scale), 0, 255))


@dataclass
class Statistics:
    """What calibration measures of each tensor of the float graph on the calibration inputs."""
    ranges: dict[str, tuple[float, float]]   # (low, high) for its QASYMM8 grid
    means: dict[str, np.ndarray]             # per channel (4-D tensors): the mean over inputs and positions


def statistics(graph: Graph, inputs: np.ndarray, method: str, percentile: float) -> Statistics:
    """Ranges per tensor: the extremes over all inputs (minmax), or the mean over batches of the given percentile
    and its mirror (percentile: a few outliers then do not cost every other value its resolution); and the
    channel means that bias correction takes."""
    from neoncc.reference import torch_graph  # PyTorch: only calibration computes a reference
    per_batch: dict[str, list[tuple[float, float]]] = {}
    sums: dict[str, np.ndarray] = {}
    for start in range(0, len(inputs), BATCH):
        for name, values in torch_graph.tensors(graph, None, inputs[start:start + BATCH]).items():
            flat = values.numpy().ravel()
            if method == "minmax":
                pair = (float(flat.min()), float(flat.max()))
            else:
                pair = tuple(float(v) for v in np.percentile(flat, [100 - percentile, percentile]))
            per_batch.setdefault(name, []).append(pair)
            if values.ndim == 4:
                total = values.double().sum((0, 2, 3)).numpy() / (values.shape[2] * values.shape[3])
                sums[name] = sums.get(name, 0) + total
    if method == "minmax":
        ranges = {k: (min(p[0] for p in v), max(p[1] for p in v)) for k, v in per_batch.items()}
    else:
        ranges = {k: (float(np.mean([p[0] for p in v])), float(np.mean([p[1] for p in v])))
                  for k, v in per_batch.items()}
    return Statistics(ranges, {k: v / len(inputs) for k, v in sums.items()})


def int8_weights(weight: np.ndarray, scales) -> np.ndarray:
    """A convolution's int8 weights (as integers in float64) at its per-output-channel scales."""
    scales = np.asarray(scales, np.float64).reshape(-1, *[1] * (weight.ndim - 1))
    return np.clip(np.round(np.asarray(weight, np.float64) / scales), -127, 127)


def bias_correction(weight: np.ndarray, scales, groups: int, input_means: np.ndarray) -> np.ndarray:
    """Per output channel, the expected error of the rounded weights on inputs of these channel means:
    sum over its input channels j and taps of (w_q - w)[o, j] x mean[j] (padding's zeros not counted)."""
    w = np.asarray(weight, np.float64)
    rounded = int8_weights(w, scales) * np.asarray(scales, np.float64).reshape(-1, *[1] * (w.ndim - 1))
    error = (rounded - w).reshape(w.shape[0], w.shape[1], -1).sum(axis=2)      # (O, C / groups)
    per_group = w.shape[0] // groups
    means = np.asarray(input_means, np.float64).reshape(groups, w.shape[1])   # each group's input channels
    return np.einsum("gpj,gj->gp", error.reshape(groups, per_group, w.shape[1]), means).ravel()


def make_plan(graph: Graph, inputs: np.ndarray, method: str = "percentile",
              percentile: float = DEFAULT_PERCENTILE, correct_biases: bool = True) -> QuantPlan:
    """`graph` is the float graph after the folding passes, with its constants (batch norms and attenuation folded
    in): what the float engine computes."""
    if method not in METHODS:
        raise UserError(f"calibration method '{method}': expected one of {', '.join(METHODS)}")
    check_supported(graph)
    weights = {name: c.array for name, c in graph.constants.items()}
    stats = statistics(graph, inputs, method, percentile)
    ranges = stats.ranges
    # Convolutions that feed only a concat write into it (concat_in_place), so they share its quantization.
    shares = {p.output: n.output for n in graph.nodes if n.op == "concat" for p in map(graph.producer, n.inputs)
              if p is not None and p.op == "conv" and len(graph.consumers(p.output)) == 1}
    plan = QuantPlan(graph.name, method, percentile if method == "percentile" else None, len(inputs))
    plan.float_tail = float_tail(graph)
    plan.tensors[graph.input_name] = qasymm8(*ranges[graph.input_name])
    for node in graph.nodes:  # concat tensors first: their producers come before them in the list
        if node.op == "concat":
            plan.tensors[node.output] = qasymm8(*ranges[node.output])
    for node in graph.nodes:
        if node.name in plan.float_tail:
            continue
        if node.output in shares:
            plan.tensors[node.output] = plan.tensors[shares[node.output]]
        elif _quant(node) == "inherit":
            plan.tensors[node.output] = plan.tensors[node.inputs[0]]
        elif node.op != "concat":
            plan.tensors[node.output] = qasymm8(*ranges[node.output])
        if node.op == "conv":
            w = weights[f"{node.name}.weight"]
            peak = np.abs(w.reshape(w.shape[0], -1)).max(axis=1).astype(np.float64)
            # A channel whose weights are all but zero (a dead filter) must still hold its bias in int32 at
            # input scale x weight scale: its weight scale is raised to that floor (its weights round to ~0).
            floor = np.abs(weights[f"{node.name}.bias"].astype(np.float64)) / (plan.tensors[node.inputs[0]][0] * 2 ** 30)
            plan.weight_scales[node.name] = [float(max(p / 127.0, f)) if max(p, f) > 0 else 1.0
                                             for p, f in zip(peak, floor)]
            if correct_biases:
                plan.bias_corrections[node.name] = [float(v) for v in bias_correction(
                    w, plan.weight_scales[node.name], node.attrs.get("groups", 1), stats.means[node.inputs[0]])]
        elif node.op == "fc":
            w = weights[f"{node.name}.weight"]
            plan.fc_weights[node.name] = qasymm8(w.min(), w.max())
    return plan


def int32(values: np.ndarray, name: str) -> np.ndarray:
    if np.abs(values).max(initial=0) >= 2 ** 31:
        raise UserError(f"'{name}': bias too large for int32 at this layer's scales (calibration range too small?)")
    return values.astype(np.int32)


def plan_from_scales(graph: Graph, scales: dict, source: str) -> QuantPlan:
    """The plan of a model that came quantized (`neoncc import tflite` of a fully 8-bit model): its own scales and
    zero points, no calibration. `scales` holds per layer output (scale, offset), per convolution its symmetric
    per-channel weight scales, per fully connected layer its weights' (scale, offset). Where our plan's rules
    decide instead (ops that keep their input's quantization, convolutions writing into a concatenation), they
    apply, and the model's own value must agree with them to half a step, else the layer is named; an op whose 8-bit
    kernel can requantize (imported_quant "own": global average pooling, as TFLite's MEAN) takes the model's."""
    check_supported(graph)
    tensors, weight_scales = scales.get("tensors", {}), scales.get("weight_scales", {})
    fc_weights = scales.get("fc_weights", {})

    def own(name: str) -> tuple[float, int]:
        if name not in tensors:
            raise UserError(f"{source}: layer '{name}' has no 8-bit scale (the model's quantization does not cover "
                            "it); build it with precision=float32")
        scale, offset = tensors[name]
        if not (float(scale) > 0 and 0 <= int(offset) <= 255):
            raise UserError(f"{source}: layer '{name}': scale {scale}, offset {offset} is not a QASYMM8 "
                            "quantization (scale > 0, offset 0..255)")
        return float(scale), int(offset)

    plan = QuantPlan(graph.name, "imported", None, 0)
    plan.float_tail = float_tail(graph)
    plan.tensors[graph.input_name] = own(graph.input_name)
    shares = {p.output: n.output for n in graph.nodes if n.op == "concat" for p in map(graph.producer, n.inputs)
              if p is not None and p.op == "conv" and len(graph.consumers(p.output)) == 1}
    for node in graph.nodes:
        if node.name in plan.float_tail:
            continue
        if ops.get(node.op, node).imported_quant == "own" and node.output in tensors:
            plan.tensors[node.output] = own(node.output)
        elif node.output in shares or _quant(node) == "inherit":
            ruled = own(shares[node.output]) if node.output in shares else plan.tensors[node.inputs[0]]
            if node.output in tensors:
                mine = own(node.output)
                readers = graph.consumers(node.output)
                differs = abs(mine[0] - ruled[0]) > 0.5 * ruled[0] / 255 or abs(mine[1] - ruled[1]) > 1
                if differs and readers and all(r.name in plan.float_tail for r in readers):
                    # Read only by the float tail, after the de-quantization: the value is the same up to the
                    # rounding of this one tensor (at its input's step instead of its own).
                    import sys
                    print(f"note: {source}: layer '{node.name}' ({node.op}) keeps its input's quantization "
                          f"(scale {ruled[0]:.6g}) where the model has its own ({mine[0]:.6g}); it is read only by "
                          "the float32 layers after the de-quantization", file=sys.stderr)
                elif differs:
                    raise UserError(f"{source}: layer '{node.name}' ({node.op}) is quantized with scale {mine[0]:.6g}, "
                                    f"offset {mine[1]}, its input with {ruled[0]:.6g}, {ruled[1]}: our 8-bit "
                                    f"'{node.op}' keeps its input's quantization")
            plan.tensors[node.output] = ruled
        else:
            plan.tensors[node.output] = own(node.output)
        if node.op == "conv":
            if node.name not in weight_scales:
                raise UserError(f"{source}: convolution '{node.name}' has no 8-bit weight scales")
            plan.weight_scales[node.name] = [float(s) for s in weight_scales[node.name]]
        elif node.op == "fc":
            found = fc_weights.get(node.name)
            if found is None or isinstance(found[0], list):
                raise UserError(f"{source}: fully connected layer '{node.name}' runs in 8 bits here, which takes one "
                                "weight scale and zero point for the layer (ACL 20.08's QASYMM8 fully connected "
                                "layer); the model has " + ("none" if found is None else "one per output unit"))
            plan.fc_weights[node.name] = (float(found[0]), int(found[1]))
    return plan
