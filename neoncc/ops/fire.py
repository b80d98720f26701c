"""SqueezeNet's fire module: a 1x1 squeeze convolution, then 1x1 and 3x3 expand convolutions whose outputs are
concatenated (all with ReLU). The model reader expands it into those nodes (`expand`), named as Caffe names them."""

from __future__ import annotations

from neoncc.ir.graph import Node
from neoncc.ops import Op, register


@register
class Fire(Op):
    """fire: squeeze (filters), expand (filters of each expand convolution: N, or [e1x1, e3x3])."""

    name = "fire"
    doc = "SqueezeNet fire module (expanded into three convolutions and a concat)"
    fields = {"squeeze": {"type": "integer", "minimum": 1, "maximum": 65536},
              "expand": {"description": "filters of expand1x1 and of expand3x3: one number for both, or [e1x1, e3x3]",
                         "oneOf": [{"type": "integer", "minimum": 1, "maximum": 65536},
                                   {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65536},
                                    "minItems": 2, "maxItems": 2}]}}
    required = ("squeeze", "expand")
    removed_by = "the model reader (expanded into squeeze1x1, expand1x1, expand3x3, concat)"

    def expand(self, name: str, attrs: dict, inputs: list[str], origin: str) -> list[Node]:
        """The nodes standing for the layer, the last one its output."""
        expand = attrs["expand"]
        e1x1, e3x3 = (expand, expand) if isinstance(expand, int) else expand
        conv = dict(kernel=1, activation="relu")
        return [Node(f"{name}.squeeze1x1", "conv", inputs, dict(conv, filters=attrs["squeeze"]), origin=origin),
                Node(f"{name}.expand1x1", "conv", [f"{name}.squeeze1x1"], dict(conv, filters=e1x1), origin=origin),
                Node(f"{name}.expand3x3", "conv", [f"{name}.squeeze1x1"], dict(conv, filters=e3x3, kernel=3, pad=1),
                     origin=origin),
                Node(name, "concat", [f"{name}.expand1x1", f"{name}.expand3x3"], origin=origin)]

    def infer(self, node, shapes):
        raise AssertionError("fire is expanded by the model reader")

    def reference(self, node, xs, w):
        raise AssertionError("fire is expanded by the model reader")
