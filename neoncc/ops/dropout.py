"""Dropout: nothing at inference, except the attenuation of non-inverted dropout (the remove_dropout pass folds it
into the next convolutions' weights, or leaves a `scale` node)."""

from __future__ import annotations

from neoncc.ops import Op, register
from neoncc.ops._common import same_shape


@register
class Dropout(Op):
    """dropout: rate, attenuation (inference-time factor for non-inverted dropout, usually 1 - rate; default 1)."""

    name = "dropout"
    doc = "dropout (removed at inference)"
    fields = {"rate": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
              "attenuation": {"type": "number", "exclusiveMinimum": 0,
                              "description": "inference-time factor for non-inverted dropout (usually 1 - rate); "
                                             "default 1"}}
    required = ("rate",)
    removed_by = "remove_dropout"
    infer = same_shape

    def reference(self, node, xs, w):
        return xs[0] * float(node.attrs.get("attenuation", 1.0))
