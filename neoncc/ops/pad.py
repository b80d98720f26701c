"""Padding of height and width by a constant value or by reflection (ONNX Pad, PyTorch's F.pad, TensorFlow's
PAD / MIRROR_PAD). Zero padding right before a convolution is taken over by the convolution instead (the ONNX
importer does that); this op is the padding that stands on its own."""

from __future__ import annotations

from neoncc.errors import UserError
from neoncc.ir.shapes import padding
from neoncc.ops import Impl, Op, register
from neoncc.ops._common import PADDING, c_float

# ONNX's and PyTorch's names -> ACL's PaddingMode. ACL's SYMMETRIC repeats the edge pixel (numpy's 'symmetric'),
# which is neither ONNX's 'edge' (the edge pixel repeated outwards) nor 'wrap': those are refused.
MODES = {"constant": "CONSTANT", "reflect": "REFLECT"}


@register
class Pad(Op):
    """pad: pad (one value or [top, bottom, left, right]); mode constant | reflect; value (constant mode)."""

    name = "pad"
    doc = "padding of height and width (a constant or a reflection)"
    fields = {"pad": PADDING, "mode": {"enum": list(MODES)}, "value": {"type": "number"}}
    required = ("pad",)
    quant = None
    group = "other"
    implementations = {"acl": Impl("NEPadLayer", template="pad")}

    def infer(self, node, shapes):
        c, h, w = shapes[0]
        if node.attrs["pad"] == "same":
            raise UserError(f"{node.origin}: layer '{node.name}': pad: same needs a window; give the numbers")
        top, bottom, left, right = padding(node.attrs["pad"])
        if node.attrs.get("mode", "constant") == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
            raise UserError(f"{node.origin}: layer '{node.name}': reflecting {top, bottom, left, right} pixels needs "
                            f"an input larger than {h}x{w}")
        return (c, h + top + bottom, w + left + right)

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        top, bottom, left, right = padding(node.attrs["pad"])
        mode = node.attrs.get("mode", "constant")
        if mode == "constant":
            return F.pad(xs[0], (left, right, top, bottom), value=float(node.attrs.get("value", 0.0)))
        return F.pad(xs[0], (left, right, top, bottom), mode=mode)

    def lower(self, node, ctx, impl):
        top, bottom, left, right = padding(node.attrs["pad"])
        sides = [f"PaddingInfo({left}U, {right}U)", f"PaddingInfo({top}U, {bottom}U)"]
        if ctx.layout(node.inputs[0]) == "NHWC":
            sides.insert(0, "PaddingInfo(0U, 0U)")
        return {"padding": "PaddingList{" + ", ".join(sides) + "}",
                "value": f"PixelValue({c_float(float(node.attrs.get('value', 0.0)))})",
                "mode": f"PaddingMode::{MODES[node.attrs.get('mode', 'constant')]}"}

    def summary(self, node):
        return f"{node.attrs.get('mode', 'constant')} padding {list(padding(node.attrs['pad']))}"
