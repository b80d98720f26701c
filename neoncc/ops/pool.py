"""Pooling: max and average windows (Caffe's ceil rounding on request), and global average / max pooling."""

from __future__ import annotations

from neoncc.errors import UserError
from neoncc.ir.shapes import pair, padding
from neoncc.ops import Impl, Op, register
from neoncc.ops._common import PADDING, SIZE2, torch_pad, window

_POOL = Impl("NEPoolingLayer", template="pool", precisions=("float32", "int8"))


def _info(kind: str, node, layout: str) -> str:
    kh, kw = pair(node.attrs["kernel"])
    sy, sx = pair(node.attrs.get("stride", 1))
    top, bottom, left, right = padding(node.attrs.get("pad", 0))
    rounding = node.attrs.get("rounding", "floor").upper()
    exclude = "true" if not node.attrs.get("count_include_pad", False) else "false"
    return (f"PoolingLayerInfo(PoolingType::{kind}, Size2D({kw}U, {kh}U), DataLayout::{layout}, "
            f"PadStrideInfo({sx}U, {sy}U, {left}U, {right}U, {top}U, {bottom}U, DimensionRoundingType::{rounding}), "
            f"{exclude})")


class _Window(Op):
    fields = {"kernel": SIZE2, "stride": SIZE2, "pad": PADDING, "rounding": {"enum": ["ceil", "floor"]}}
    required = ("kernel",)
    quant = "inherit"
    group = "pool+softmax"
    implementations = {"acl": _POOL}
    kind = ""

    def infer(self, node, shapes):
        c, h, w = shapes[0]
        return window(node, c, h, w, c)

    def lower(self, node, ctx, impl):
        return {"info": _info(self.kind, node, ctx.layout(node.inputs[0]))}

    def summary(self, node):
        a = node.attrs
        return (f"{self.name} {a['kernel']}, stride {a.get('stride', 1)}, pad {list(padding(a.get('pad', 0)))}, "
                f"{a.get('rounding', 'floor')}")


@register
class MaxPool(_Window):
    """maxpool: kernel, stride, pad, rounding (ceil: Caffe's rule)."""

    name = "maxpool"
    doc = "max pooling"
    kind = "MAX"

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        return F.max_pool2d(torch_pad(xs[0], node, float("-inf")), pair(node.attrs["kernel"]),
                            pair(node.attrs.get("stride", 1)), ceil_mode=node.attrs.get("rounding") == "ceil")


@register
class AvgPool(_Window):
    """avgpool: kernel, stride, pad, rounding; padded cells are left out of the mean unless count_include_pad."""

    name = "avgpool"
    doc = "average pooling"
    kind = "AVG"
    fields = {**_Window.fields, "count_include_pad": {"type": "boolean", "description": "default false"}}

    def infer(self, node, shapes):
        shape = super().infer(node, shapes)
        if any(padding(node.attrs.get("pad", 0))) and node.attrs.get("rounding") == "ceil":
            raise UserError(f"{node.origin}: layer '{node.name}': padded average pooling with ceil rounding is "
                            "not supported")
        return shape

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        top, bottom, left, right = padding(node.attrs.get("pad", 0))
        kernel, stride = pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1))
        ceil = node.attrs.get("rounding") == "ceil"
        if (top, left) == (bottom, right):  # symmetric: PyTorch's own padding
            return F.avg_pool2d(xs[0], kernel, stride, (top, left), ceil_mode=ceil,
                                count_include_pad=bool(node.attrs.get("count_include_pad", False)))
        x = torch_pad(xs[0], node, 0.0)
        total = F.avg_pool2d(x, kernel, stride, ceil_mode=ceil, divisor_override=1)
        if node.attrs.get("count_include_pad", False):
            return total / (kernel[0] * kernel[1])
        ones = torch_pad(xs[0].new_ones((1, 1, *xs[0].shape[2:])), node, 0.0)
        return total / F.avg_pool2d(ones, kernel, stride, ceil_mode=ceil, divisor_override=1)


class _Global(Op):
    quant = "inherit"
    group = "pool+softmax"
    kind = ""

    def infer(self, node, shapes):
        return (shapes[0][0], 1, 1)

    def lower(self, node, ctx, impl):
        return {"info": f"PoolingLayerInfo(PoolingType::{self.kind}, DataLayout::{ctx.layout(node.inputs[0])})"}

    def summary(self, node):
        return self.doc


@register
class GlobalAvgPool(_Global):
    """global_avgpool: the mean of each channel."""

    name = "global_avgpool"
    doc = "global average pooling"
    kind = "AVG"
    implementations = {"acl": _POOL,
                       "engine": Impl("engine::QuantizedGlobalAveragePooling", template="pool", layouts=("NCHW",),
                                      precisions=("int8",))}

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        return F.adaptive_avg_pool2d(xs[0], 1)


@register
class GlobalMaxPool(_Global):
    """global_maxpool: the maximum of each channel."""

    name = "global_maxpool"
    doc = "global max pooling"
    kind = "MAX"
    implementations = {"acl": _POOL}

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        return F.adaptive_max_pool2d(xs[0], 1)
