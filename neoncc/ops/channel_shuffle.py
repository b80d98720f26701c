"""Channel shuffle (ShuffleNet): the channels seen as a groups x (C / groups) matrix, transposed."""

from __future__ import annotations

from neoncc.errors import UserError
from neoncc.ops import Impl, Op, register


@register
class ChannelShuffle(Op):
    """channel_shuffle: groups (a divisor of the channels)."""

    name = "channel_shuffle"
    doc = "channel shuffle"
    fields = {"groups": {"type": "integer", "minimum": 2, "maximum": 65536}}
    required = ("groups",)
    quant = "inherit"
    implementations = {"acl": Impl("NEChannelShuffleLayer", template="channel_shuffle", precisions=("float32", "int8"))}

    def infer(self, node, shapes):
        if shapes[0][0] % node.attrs["groups"]:
            raise UserError(f"{node.origin}: layer '{node.name}': {shapes[0][0]} channels do not split into "
                            f"{node.attrs['groups']} groups")
        return shapes[0]

    def reference(self, node, xs, w):
        n, c, h, width = xs[0].shape
        groups = node.attrs["groups"]
        return xs[0].reshape(n, groups, c // groups, h, width).transpose(1, 2).reshape(n, c, h, width)

    def lower(self, node, ctx, impl):
        return {"groups": node.attrs["groups"]}

    def summary(self, node):
        return f"channel shuffle, {node.attrs['groups']} groups"
