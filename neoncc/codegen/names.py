"""The C++ names the generated engine uses for a model and its layers: one rule, shared by the code generator and
by the model reader, which refuses names that would clash once mangled."""

from __future__ import annotations

import re


def identifier(name: str) -> str:
    """A C++ name for a layer name: `_blocks.0._depthwise_conv` becomes `blocks_0_depthwise_conv` (no reserved
    double or leading underscores)."""
    return re.sub(r"_+", "_", re.sub(r"\W", "_", name)).strip("_")


def class_name(model_name: str) -> str:
    """The C++ class the generated engine declares for a model: `squeezenet_v1_1` becomes `SqueezenetV11`."""
    return "".join(p.capitalize() for p in identifier(model_name).split("_"))
