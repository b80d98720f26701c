"""What every importer ends with: a model description (YAML, one layer a line) and a weights .npz in neoncc's
key format, both checked by the same reader the build uses before either is put in place.

Importers describe the source model as plain layers (conv, relu, concat, ...) in execution order; the two
rewrites here turn that into what a person would write: ReLUs folded into their convolutions (`activation:
relu`) and SqueezeNet's squeeze/expand/concat pattern into `type: fire` layers.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from neoncc.errors import UserError
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.ir.graph import Graph
from neoncc.weights.pack import check_arrays
from neoncc.weights.state_dict import write_npz

# Preprocessing of the two families of trained SqueezeNets: Caffe's release and torchvision's.
PREPROCESS = {
    "caffe": {"resize": 256, "channel_order": "BGR", "mean": [104, 117, 123], "scale": 1.0},
    "torchvision": {"resize": 256, "channel_order": "RGB", "mean": [123.675, 116.28, 103.53],
                    "std": [58.395, 57.12, 57.375]},
    "none": None,
}


def preprocess(kind: str, input_shape: tuple[int, int, int]) -> dict | None:
    """A preprocessing preset for an input size: shorter side to 256, then a centre crop of the input's size."""
    spec = PREPROCESS[kind]
    if spec is None:
        return None
    crop = {"crop": input_shape[1]} if input_shape[1] == input_shape[2] else {}
    return {"resize": spec["resize"], **crop, **{k: v for k, v in spec.items() if k != "resize"}}


@dataclass
class ImportedModel:
    """A model as an importer read it. `layers` are YAML layer dicts whose `input` is always a list of layer
    names (or the input's name); `weights` are keyed `<layer>.weight` / `<layer>.bias`."""

    name: str
    input_shape: tuple[int, int, int]
    layers: list[dict]
    weights: dict[str, np.ndarray]
    source: str  # what it was imported from, for the header comment and for messages
    description: str = ""
    input_name: str = "data"
    preprocess: dict | None = None
    notes: list[str] = field(default_factory=list)  # further header comment lines
    labels: Path | None = None  # a class-name file; the description refers to it relative to itself
    # A quantized model's own 8-bit scales (neoncc/quantize/plan.py: plan_from_scales), or None.
    quantization: dict | None = None


def scale_shift(scale: np.ndarray, shift: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    """y = scale * x + shift per channel as a layer: `affine` (alpha, beta) when every channel has the same ones,
    else a `batchnorm` with neutral statistics. Returns the layer entry (no name, no input) and its weights keyed
    by role (weight, bias, running_mean, running_var)."""
    if np.all(scale == scale[0]) and np.all(shift == shift[0]):
        entry = {"type": "affine"}
        if scale[0] != 1:
            entry["alpha"] = float(np.float32(scale[0]))
        if shift[0] != 0:
            entry["beta"] = float(np.float32(shift[0]))
        return entry, {}
    eps = 1e-5  # the batchnorm layer's default: its weight is scaled so that weight / sqrt(1 + eps) = scale
    return {"type": "batchnorm"}, {"weight": (scale * np.sqrt(1.0 + eps)).astype(np.float32),
                                   "bias": shift.astype(np.float32),
                                   "running_mean": np.zeros(len(scale), np.float32),
                                   "running_var": np.ones(len(scale), np.float32)}


def identifier(text: str, fallback: str) -> str:
    """A layer name our schema accepts, from a framework's name (`fire2/squeeze1x1` -> `fire2.squeeze1x1`,
    `/fire2/Concat` -> `fire2.Concat`)."""
    name = re.sub(r"[^A-Za-z0-9_.]", "_", text.replace("/", ".")).strip(".")
    name = re.sub(r"\.{2,}", ".", name)
    if not name:
        return fallback
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


def model_name(path: Path) -> str:
    """The model's name from the YAML file it goes to, as the build names the engine after that file."""
    name = re.sub(r"\W", "_", Path(path).stem)
    return name if re.match(r"[A-Za-z_]", name) else f"m_{name}"


def unique(name: str, taken: set[str]) -> str:
    candidate, index = name, 1
    while candidate in taken:
        candidate, index = f"{name}_{index}", index + 1
    taken.add(candidate)
    return candidate


def _consumers(layers: list[dict], name: str) -> list[dict]:
    return [layer for layer in layers if name in layer["input"]]


def _rename_inputs(layers: list[dict], old: str, new: str) -> None:
    for layer in layers:
        layer["input"] = [new if tensor == old else tensor for tensor in layer["input"]]


def fuse_relu(layers: list[dict]) -> list[dict]:
    """A ReLU that is the only reader of a convolution becomes that convolution's `activation: relu`."""
    by_name = {layer["name"]: layer for layer in layers}
    for relu in [layer for layer in layers if layer["type"] == "relu"]:
        conv = by_name.get(relu["input"][0])
        if conv is None or conv["type"] != "conv" or "activation" in conv or _consumers(layers, conv["name"]) != [relu]:
            continue
        conv["activation"] = "relu"
        layers.remove(relu)
        _rename_inputs(layers, relu["name"], conv["name"])
    return layers


def _is_conv(layer: dict | None, kernel: int, pad: int) -> bool:
    return (layer is not None and layer["type"] == "conv" and layer.get("activation") == "relu"
            and layer["kernel"] in (kernel, [kernel, kernel]) and layer.get("stride", 1) in (1, [1, 1])
            and layer.get("pad", 0) in (pad, [pad] * 4))


def _fire_name(squeeze: str, expand1x1: str, expand3x3: str, concat: str) -> str:
    """`fire2` when the three convolutions are named `fire2.squeeze1x1`, `fire2.expand1x1`, `fire2.expand3x3`
    (Caffe) or `features.3.squeeze`, ... (torchvision); otherwise the concat's name."""
    prefixes = {squeeze.rpartition(".")[0]} | {n.rpartition(".")[0] for n in (expand1x1, expand3x3)}
    suffixes = (squeeze.rpartition(".")[2], expand1x1.rpartition(".")[2], expand3x3.rpartition(".")[2])
    if len(prefixes) == 1 and "" not in prefixes and suffixes[0] in ("squeeze1x1", "squeeze") \
            and suffixes[1:] == ("expand1x1", "expand3x3"):
        return prefixes.pop()
    return concat


def fold_fire(layers: list[dict], weights: dict[str, np.ndarray]) -> list[dict]:
    """squeeze 1x1 conv+ReLU feeding only an expand 1x1 and an expand 3x3 (pad 1) conv+ReLU, concatenated in
    that order and read by nothing else: a fire module. Its weights move to `<fire>.squeeze1x1` etc."""
    by_name = {layer["name"]: layer for layer in layers}
    for concat in [layer for layer in layers if layer["type"] == "concat" and len(layer["input"]) == 2]:
        left, right = (by_name.get(name) for name in concat["input"])
        if not (_is_conv(left, 1, 0) and _is_conv(right, 3, 1) and left["input"] == right["input"]):
            continue
        squeeze = by_name.get(left["input"][0])
        if not _is_conv(squeeze, 1, 0) or _consumers(layers, squeeze["name"]) != [left, right] \
                or _consumers(layers, left["name"]) != [concat] or _consumers(layers, right["name"]) != [concat]:
            continue
        parts = {"squeeze1x1": squeeze, "expand1x1": left, "expand3x3": right}
        name = _fire_name(squeeze["name"], left["name"], right["name"], concat["name"])
        if name != concat["name"] and name in by_name:
            name = concat["name"]
        expand = left["filters"] if left["filters"] == right["filters"] else [left["filters"], right["filters"]]
        fire = {"name": name, "type": "fire", "input": squeeze["input"], "squeeze": squeeze["filters"],
                "expand": expand}
        for part, conv in parts.items():
            for kind in ("weight", "bias"):
                weights[f"{name}.{part}.{kind}"] = weights.pop(f"{conv['name']}.{kind}")
            layers.remove(conv)
        layers[layers.index(concat)] = fire
        _rename_inputs(layers, concat["name"], name)
        by_name = {layer["name"]: layer for layer in layers}
    return layers


def _flow(value) -> str:
    """A value on one line, in YAML's flow style (quoted only where YAML needs it)."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=math.inf)
    return text.removesuffix("\n...\n").strip()


def render_yaml(model: ImportedModel, labels: str | None = None) -> str:
    """The description as a person would write it: a header saying where it came from, one layer a line,
    `input:` only where a layer does not read the one before it."""
    lines = [f"# {line}" for line in [f"Imported from {model.source}", *model.notes]]
    lines += ["", f"name: {model.name}"]
    if model.description:
        lines += [f"description: {_flow(model.description)}"]
    if labels:
        lines += [f"labels: {_flow(labels)}"]
    lines += ["", f"input: {_flow({'name': model.input_name, 'shape': list(model.input_shape)})}"]
    if model.preprocess:
        lines += [f"preprocess: {_flow(model.preprocess)}"]
    lines += ["", "layers:"]
    previous = model.input_name
    for layer in model.layers:
        entry = {"name": layer["name"], "type": layer["type"]}
        if layer["input"] != [previous]:
            entry["input"] = layer["input"][0] if len(layer["input"]) == 1 else layer["input"]
        entry.update((k, v) for k, v in layer.items() if k not in entry and k != "input")
        lines.append(f"  - {_flow(entry)}")
        previous = layer["name"]
    return "\n".join(lines) + "\n"


def write(model: ImportedModel, yaml_out: Path, npz_out: Path) -> None:
    """Checks the description (with the build's own reader, from a temporary file) and the weights against it
    before putting either in place: a refusal leaves nothing behind."""
    yaml_out = Path(yaml_out)
    model.layers = fold_fire(fuse_relu(model.layers), model.weights)
    partial = yaml_out.with_name(f".{yaml_out.name}.{os.getpid()}.partial.yaml")
    try:
        labels = os.path.relpath(model.labels, yaml_out.resolve().parent) if model.labels else None
        partial.write_text(render_yaml(model, labels))
        try:
            graph = load_yaml_model(partial)
        except UserError as err:
            raise UserError(f"{model.source}: the imported description does not check:\n"
                            + str(err).replace(str(partial), str(yaml_out))) from None
        write_weights(graph, model.weights, npz_out, model.source)
        partial.replace(yaml_out)
    finally:
        partial.unlink(missing_ok=True)


def write_weights(graph: Graph, weights: dict[str, np.ndarray], npz_out: Path, source: str) -> None:
    """The weights, checked by name and shape against the model, written under a temporary name and renamed."""
    write_npz(check_arrays(graph, weights, source), Path(npz_out))
