"""A range of channels [start, end) of a tensor (ONNX Split / Slice on channels, as ShuffleNet and GhostNet use)."""

from __future__ import annotations

from neoncc.errors import UserError
from neoncc.ops import Impl, Op, register


@register
class Slice(Op):
    """slice: start, end (channels; end exclusive)."""

    name = "slice"
    doc = "a range of channels"
    fields = {"start": {"type": "integer", "minimum": 0}, "end": {"type": "integer", "minimum": 1}}
    required = ("start", "end")
    quant = "inherit"
    implementations = {"acl": Impl("NESlice", template="slice", precisions=("float32", "int8"))}

    def infer(self, node, shapes):
        c, h, w = shapes[0]
        start, end = node.attrs["start"], node.attrs["end"]
        if not start < end <= c:
            raise UserError(f"{node.origin}: layer '{node.name}': channels [{start}, {end}) are not within the "
                            f"input's {c}")
        return (end - start, h, w)

    def reference(self, node, xs, w):
        return xs[0][:, node.attrs["start"]:node.attrs["end"]]

    def lower(self, node, ctx, impl):
        _, h, w = ctx.graph.shape_of(node.inputs[0])
        start, end = node.attrs["start"], node.attrs["end"]
        if ctx.layout(node.inputs[0]) == "NHWC":
            return {"starts": f"Coordinates({start}, 0, 0)", "ends": f"Coordinates({end}, {w}, {h})"}
        return {"starts": f"Coordinates(0, 0, {start})", "ends": f"Coordinates({w}, {h}, {end})"}

    def summary(self, node):
        return f"channels {node.attrs['start']} to {node.attrs['end'] - 1}"
