"""Pooling: max and average windows (Caffe's ceil rounding on request), and global average / max pooling."""

from __future__ import annotations

from neoncc.errors import UserError
from neoncc.ir.shapes import pair, padding
from neoncc.ops import Impl, Op, register
from neoncc.ops._common import PADDING, SIZE2, torch_pad, window

def _dilated(node) -> bool:
    return pair(node.attrs.get("dilation", 1)) != (1, 1)


_UNDILATED = (lambda node: not _dilated(node), "windows without dilation")
_POOL = Impl("NEPoolingLayer", template="pool", precisions=("float32", "int8"), requires=_UNDILATED)
# ACL 20.08's pooling has no dilation: ours (runtime/dilated_pooling.h), in either layout.
_DILATED = Impl("engine::DilatedPooling", template="dilated_pool", requires=(_dilated, "dilated windows"))


def floor_padding(node, input_shape) -> tuple[int, int, int, int]:
    """Rounding up is spelled as rounding down with as much extra padding at the bottom/right as the output size of
    the shape rule needs (Caffe's and ONNX's rules differ in which last window they drop; ACL's CEIL drops none)."""
    kh, kw = pair(node.attrs["kernel"])
    dh, dw = pair(node.attrs.get("dilation", 1))
    kh, kw = (kh - 1) * dh + 1, (kw - 1) * dw + 1  # the window's extent
    sy, sx = pair(node.attrs.get("stride", 1))
    top, bottom, left, right = padding(node.attrs.get("pad", 0))
    _, out_h, out_w = node.shape
    _, h, w = input_shape
    return (top, bottom + max((out_h - 1) * sy + kh - (h + top + bottom), 0),
            left, right + max((out_w - 1) * sx + kw - (w + left + right), 0))


def _info(kind: str, node, layout: str, input_shape) -> str:
    """ACL leaves padding out of max pooling and, unless asked, out of the average."""
    kh, kw = pair(node.attrs["kernel"])
    sy, sx = pair(node.attrs.get("stride", 1))
    top, bottom, left, right = floor_padding(node, input_shape)
    rounding = "FLOOR"
    exclude = "true" if not node.attrs.get("count_include_pad", False) else "false"
    return (f"PoolingLayerInfo(PoolingType::{kind}, Size2D({kw}U, {kh}U), DataLayout::{layout}, "
            f"PadStrideInfo({sx}U, {sy}U, {left}U, {right}U, {top}U, {bottom}U, DimensionRoundingType::{rounding}), "
            f"{exclude})")


class _Window(Op):
    fields = {"kernel": SIZE2, "stride": SIZE2, "pad": PADDING, "dilation": SIZE2, "rounding": {"enum": ["ceil", "floor"]},
              "ceil_rule": {"enum": ["caffe", "onnx"],
                            "description": "with rounding: ceil, which last window is dropped. caffe (default): one "
                                           "starting in the padding, when there is padding. onnx (ONNX's and "
                                           "PyTorch's ceil_mode): one starting past the input and its top/left "
                                           "padding, padded or not"}}
    required = ("kernel",)
    quant = "inherit"
    group = "pool+softmax"
    implementations = {"acl": _POOL, "dilated": _DILATED}
    kind = ""

    def infer(self, node, shapes):
        c, h, w = shapes[0]
        return window(node, c, h, w, c)

    def lower(self, node, ctx, impl):
        shape = ctx.graph.shape_of(node.inputs[0])
        if impl is _DILATED:
            (kh, kw), (sy, sx) = pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1))
            (dh, dw), (top, bottom, left, right) = pair(node.attrs["dilation"]), padding(node.attrs.get("pad", 0))
            include = "true" if node.attrs.get("count_include_pad") else "false"
            return {"info": f"engine::DilatedPoolingInfo{{{'true' if self.kind == 'MAX' else 'false'}, {kw}U, {kh}U, "
                            f"{sx}U, {sy}U, {left}U, {right}U, {top}U, {bottom}U, {dw}U, {dh}U, {include}}}"}
        if node.attrs.get("count_include_pad") and floor_padding(node, shape) != padding(node.attrs.get("pad", 0)):
            raise UserError(f"{node.origin}: layer '{node.name}': count_include_pad with a rounded-up last window "
                            "is not supported (ACL would count the extra row in the divisor)")
        return {"info": _info(self.kind, node, ctx.layout(node.inputs[0]), shape)}

    def summary(self, node):
        a = node.attrs
        return (f"{self.name} {a['kernel']}, stride {a.get('stride', 1)}, pad {list(padding(a.get('pad', 0)))}, "
                f"{a.get('rounding', 'floor')}" + (f", dilation {a['dilation']}" if _dilated(node) else ""))


@register
class MaxPool(_Window):
    """maxpool: kernel, stride, pad, rounding (ceil: Caffe's rule)."""

    name = "maxpool"
    doc = "max pooling"
    kind = "MAX"
    # ACL's NHWC pooling costs 4x its NCHW one on armv7: our own NHWC max pooling (runtime/max_pooling_nhwc.h).
    # 8 bits in NHWC: ours too (runtime/quantized_max_pooling_nhwc.h; on v1.1's pool3 ACL's cost 3.5 M, ours 0.6 M).
    implementations = {"nhwc": Impl("engine::MaxPoolingNhwc", template="pool", layouts=("NHWC",), requires=_UNDILATED),
                       "nhwc_int8": Impl("engine::QuantizedMaxPoolingNhwc", template="pool", layouts=("NHWC",),
                                         precisions=("int8",), requires=_UNDILATED),
                       "acl": _POOL, "dilated": _DILATED}

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        top, bottom, left, right = floor_padding(node, (0, *xs[0].shape[2:]))
        x = F.pad(xs[0], (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1)),
                            dilation=pair(node.attrs.get("dilation", 1)))


@register
class AvgPool(_Window):
    """avgpool: kernel, stride, pad, rounding; padded cells are left out of the mean unless count_include_pad."""

    name = "avgpool"
    doc = "average pooling"
    kind = "AVG"
    fields = {**_Window.fields, "count_include_pad": {"type": "boolean", "description": "default false"}}

    def reference(self, node, xs, w):
        """The sum of each window over what it counts: the input's pixels, and with count_include_pad the declared
        padding too (never the extra rows a rounding up adds)."""
        from torch.nn import functional as F
        kernel, stride = pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1))
        top, bottom, left, right = floor_padding(node, (0, *xs[0].shape[2:]))
        if _dilated(node):
            return self._dilated_reference(node, xs[0], (top, bottom, left, right))
        total = F.avg_pool2d(F.pad(xs[0], (left, right, top, bottom)), kernel, stride, divisor_override=1)
        counted = xs[0].new_ones((1, 1, *xs[0].shape[2:]))
        if node.attrs.get("count_include_pad", False):
            counted = torch_pad(counted, node, 1.0)
            declared = padding(node.attrs.get("pad", 0))
            top, bottom, left, right = top - declared[0], bottom - declared[1], left - declared[2], right - declared[3]
        counted = F.pad(counted, (left, right, top, bottom))
        return total / F.avg_pool2d(counted, kernel, stride, divisor_override=1)

    @staticmethod
    def _dilated_reference(node, x, pads):
        """Dilated windows (avg_pool2d has no dilation): sums of unfolded windows over the count of cells counted."""
        from torch.nn import functional as F
        top, bottom, left, right = pads
        kernel, stride = pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1))
        dilation = pair(node.attrs["dilation"])
        _, h, w = node.shape

        def window_sums(t):
            cols = F.unfold(F.pad(t, (left, right, top, bottom)), kernel, dilation=dilation, stride=stride)
            return cols.view(t.shape[0], t.shape[1], -1, h * w).sum(2).view(t.shape[0], t.shape[1], h, w)
        counted = x.new_ones((1, 1, *x.shape[2:]))
        if node.attrs.get("count_include_pad", False):
            declared = padding(node.attrs.get("pad", 0))
            counted = F.pad(counted, (declared[2], declared[3], declared[0], declared[1]), value=1.0)
            top, bottom, left, right = (top - declared[0], bottom - declared[1], left - declared[2],
                                        right - declared[3])
            sums = window_sums(F.pad(x, (declared[2], declared[3], declared[0], declared[1])))
        else:
            sums = window_sums(x)
        return sums / window_sums(counted)


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
    # A model that comes quantized may give it a quantization of its own (TFLite's MEAN): our 8-bit kernel then
    # requantizes as TFLite's reference MEAN does.
    imported_quant = "own"
    # ACL 20.08's NHWC global pooling costs 2.0 M instructions on SqueezeNet's pool10: ours
    # (runtime/global_average_pooling_nhwc.h) about 0.12 M.
    implementations = {"nhwc": Impl("engine::GlobalAveragePoolingNhwc", template="pool", layouts=("NHWC",)),
                       "acl": _POOL,
                       "engine": Impl("engine::QuantizedGlobalAveragePooling", template="pool",
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
