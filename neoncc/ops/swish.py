"""Swish (SiLU): x * sigmoid(x), as EfficientNet-B0 and MnasNet-like models use it. The model reader expands it into
a sigmoid and a multiplication, which the engine runs as two ACL functions."""

from __future__ import annotations

from neoncc.ir.graph import Node
from neoncc.ops import Op, register


@register
class Swish(Op):
    """swish: x * sigmoid(x)."""

    name = "swish"
    doc = "swish / SiLU, x * sigmoid(x) (expanded into sigmoid and mul)"
    removed_by = "the model reader (expanded into sigmoid and mul)"

    def expand(self, name: str, attrs: dict, inputs: list[str], origin: str) -> list[Node]:
        return [Node(f"{name}.sigmoid", "sigmoid", inputs, origin=origin),
                Node(name, "mul", [inputs[0], f"{name}.sigmoid"], origin=origin)]

    def infer(self, node, shapes):
        raise AssertionError("swish is expanded by the model reader")

    def reference(self, node, xs, w):
        raise AssertionError("swish is expanded by the model reader")
