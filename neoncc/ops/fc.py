"""Fully connected layer (its input flattened in C, H, W order)."""

from __future__ import annotations

import math

from neoncc.ir.graph import Param
from neoncc.ops import Impl, Op, register
from neoncc.ops._common import ACTIVATION


@register
class FullyConnected(Op):
    """fc: units, activation."""

    name = "fc"
    doc = "fully connected layer"
    fields = {"units": {"type": "integer", "minimum": 1, "maximum": 1048576}, "activation": ACTIVATION}
    required = ("units",)
    quant = "own"
    implementations = {"acl": Impl("NEFullyConnectedLayer", template="fc", scratch=True,
                                   precisions=("float32", "int8"))}

    def infer(self, node, shapes):
        c, h, w = shapes[0]
        units = node.attrs["units"]
        node.params = [Param(f"{node.name}.weight", (units, c * h * w)), Param(f"{node.name}.bias", (units,))]
        return (units, 1, 1)

    def macs(self, node, shapes):
        return math.prod(node.params[0].shape)

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        return F.linear(xs[0].flatten(1), w[f"{node.name}.weight"], w[f"{node.name}.bias"])[:, :, None, None]

    def lower(self, node, ctx, impl):
        return ctx.bind_constants(node, ("weights", "biases"))

    def summary(self, node):
        return f"fully connected, {node.attrs['units']} units"
