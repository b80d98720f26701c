"""Convolution: dense, grouped as depthwise (groups = input channels), with dilation, per-side padding, a fused
ReLU/ReLU6 and, after the passes, a folded batch normalization and dropout attenuation (in its constants)."""

from __future__ import annotations

from neoncc.errors import UserError
from neoncc.ir.shapes import pair, padding
from neoncc.ir.graph import Param
from neoncc.ops import Impl, Op, register
from neoncc.ops._common import ACTIVATION, FUSED_ACTIVATIONS, PADDING, SIZE2, pad_stride, torch_pad, window

_CONV = dict(template="conv", scratch=True)


def _pointwise(node) -> bool:
    return (pair(node.attrs["kernel"]) == (1, 1) and pair(node.attrs.get("stride", 1)) == (1, 1)
            and not any(padding(node.attrs.get("pad", 0))) and node.attrs.get("groups", 1) == 1)


def _dense(node) -> bool:
    return node.attrs.get("groups", 1) == 1


def _direct(node) -> bool:  # ACL 20.08's documented limits (its validate() has the last word)
    kernel, stride = pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1))
    return _dense(node) and kernel[0] == kernel[1] and kernel[0] in (1, 3, 5) and max(stride) <= 3


def _plain(node) -> bool:
    return _dense(node) and pair(node.attrs.get("dilation", 1)) == (1, 1)


def _winograd63(node) -> bool:
    kernel, stride = pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1))
    return kernel == (3, 3) and stride == (1, 1) and _plain(node)


def _rgb3x3s2(node) -> bool:
    kernel, stride = pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1))
    return kernel == (3, 3) and stride == (2, 2) and _plain(node) and bool(node.params) and node.params[0].shape[1] == 3


def _winograd(node) -> bool:
    kernel, stride = pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1))
    return _dense(node) and kernel in ((3, 3), (5, 5), (3, 1), (1, 3), (5, 1), (1, 5)) and stride == (1, 1)


def _multiplier(node) -> int:
    """A depthwise convolution's filters per input channel (groups = input channels)."""
    return node.attrs["filters"] // node.attrs.get("groups", 1)


def _depthwise_nchw_only(node) -> bool:
    """Depthwise convolutions that ACL 20.08 computes correctly only in NCHW (see the implementations)."""
    kernel, stride = pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1))
    return _multiplier(node) > 1 or (kernel != (3, 3) and stride != (1, 1))


def _dw_nhwc(node) -> bool:
    """What engine::DepthwiseConvolution runs: one filter per channel, a 3x3 or 5x5 kernel, stride 1 or 2."""
    kernel, stride = pair(node.attrs["kernel"]), pair(node.attrs.get("stride", 1))
    return (node.attrs.get("groups", 1) > 1 and _multiplier(node) == 1 and kernel in ((3, 3), (5, 5))
            and stride in ((1, 1), (2, 2)) and pair(node.attrs.get("dilation", 1)) == (1, 1))


@register
class Conv(Op):
    """conv: filters, kernel, stride, pad, dilation, groups (1 or the input channels: depthwise), bias, activation."""

    name = "conv"
    doc = "convolution; `groups` equal to the input channels makes it depthwise"
    fields = {"filters": {"type": "integer", "minimum": 1, "maximum": 65536}, "kernel": SIZE2, "stride": SIZE2,
              "pad": PADDING, "dilation": SIZE2,
              "groups": {"type": "integer", "minimum": 1, "description": "1, or the input channels (depthwise)"},
              "bias": {"type": "boolean", "description": "whether the weights file holds <name>.bias; default true"},
              "activation": ACTIVATION}
    required = ("filters", "kernel")
    quant = "own"
    # The kernels a convolution can run on, by method name (the tuning files' `conv_method` values).
    implementations = {
        "auto": Impl("NEConvolutionLayer", requires=(_dense, "groups=1"), **_CONV),   # ACL picks at configure time
        "gemm": Impl("NEGEMMConvolutionLayer", precisions=("float32", "int8"), requires=(_dense, "groups=1"), **_CONV),
        "winograd": Impl("NEWinogradConvolutionLayer", requires=(_winograd, "groups=1, a 3x3, 5x5, 3x1, 1x3, 5x1 or "
                                                                           "1x5 kernel and stride 1"), **_CONV),
        "direct": Impl("NEDirectConvolutionLayer", requires=(_direct, "groups=1, a square 1x1, 3x3 or 5x5 kernel, "
                                                                      "stride <= 3"), **_CONV),
        "pointwise": Impl("engine::PointwiseConvolution", layouts=("NCHW",),       # runtime/
                          requires=(_pointwise, "a 1x1 kernel, stride 1, no padding"), **_CONV),
        "packed_gemm": Impl("engine::PackedGemmConvolution", layouts=("NHWC",),      # runtime/
                            requires=(_plain, "groups 1 and no dilation"), strided_output=True,
                            quantized_output=True, **_CONV),
        "winograd63": Impl("engine::WinogradConvolution", layouts=("NHWC",),        # runtime/, F(6x6, 3x3)
                           requires=(_winograd63, "a 3x3 kernel, stride 1, groups 1 and no dilation"),
                           strided_output=True, quantized_output=True, **_CONV),
        "winograd43": Impl("engine::WinogradConvolution43", layouts=("NHWC",),      # runtime/, F(4x4, 3x3)
                           requires=(_winograd63, "a 3x3 kernel, stride 1, groups 1 and no dilation"),
                           strided_output=True, quantized_output=True, **_CONV),
        "direct3x3s2": Impl("engine::DirectConvolution3x3s2", layouts=("NHWC",),  # runtime/, e.g. conv1
                            requires=(_rgb3x3s2, "a 3x3 kernel, stride 2, 3 input channels, groups 1 and no dilation"),
                            strided_output=True, **_CONV),
        "qconv": Impl("engine::QuantizedConvolution", layouts=("NCHW",), precisions=("int8",),
                      requires=(_dense, "groups=1"), **_CONV),
        # runtime/quantized_convolution_nhwc.h: NHWC, gathers each pixel's row, 8-bit products, any output strides
        "qconv_nhwc": Impl("engine::QuantizedConvolutionNhwc", layouts=("NHWC",), precisions=("int8",),
                           requires=(_plain, "groups 1 and no dilation"), strided_output=True, **_CONV),
        # runtime/depthwise_convolution.h: NHWC, 4 channels x 4 output pixels per group, taps of a block packed once
        "dw_nhwc": Impl("engine::DepthwiseConvolution", layouts=("NHWC",),
                        requires=(_dw_nhwc, "a depthwise convolution with one filter per channel, a 3x3 or 5x5 "
                                            "kernel, stride 1 or 2 and no dilation"),
                        strided_output=True, **_CONV),
        "depthwise": Impl("NEDepthwiseConvolutionLayer", template="depthwise", scratch=True,
                          precisions=("float32", "int8"),
                          requires=(lambda n: not _depthwise_nchw_only(n), "one filter per channel, and a 3x3 kernel "
                                                                           "or stride 1")),
        # ACL 20.08's NHWC depthwise kernel gives wrong results, once a convolution writes its input, with a depth
        # multiplier > 1 (tests/models/tiny_mobile.yaml's `dw`) and with a 5x5 stride-2 kernel (MnasNet; 3x3 stride 2
        # and 5x5 stride 1 are right): those run in NCHW (tests/test_layer_kinds.py).
        "depthwise_nchw": Impl("NEDepthwiseConvolutionLayer", template="depthwise", scratch=True,
                               layouts=("NCHW",), precisions=("float32", "int8"),
                               requires=(_depthwise_nchw_only, "a depth multiplier above 1, or a kernel other than "
                                                               "3x3 with a stride above 1")),
    }

    @staticmethod
    def depthwise(node) -> bool:
        return node.attrs.get("groups", 1) > 1

    def infer(self, node, shapes):
        c, h, w = shapes[0]
        kh, kw = pair(node.attrs["kernel"])
        filters, groups = node.attrs["filters"], node.attrs.get("groups", 1)
        if groups not in (1, c) or filters % groups:
            raise UserError(f"{node.origin}: layer '{node.name}': groups={groups} with {c} input channels and "
                            f"{filters} filters: only groups=1 or depthwise convolution (groups = input channels, "
                            f"filters a multiple of them) are supported")
        node.params = [Param(f"{node.name}.weight", (filters, c // groups, kh, kw))]
        if node.attrs.get("bias", True):
            node.params.append(Param(f"{node.name}.bias", (filters,)))
        return window(node, c, h, w, filters)

    def macs(self, node, shapes):
        out_c, out_h, out_w = node.shape
        _, in_per_group, kh, kw = node.params[0].shape
        return out_c * out_h * out_w * in_per_group * kh * kw

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        y = F.conv2d(torch_pad(xs[0], node, 0.0), w[f"{node.name}.weight"], w.get(f"{node.name}.bias"),
                     stride=pair(node.attrs.get("stride", 1)), dilation=pair(node.attrs.get("dilation", 1)),
                     groups=node.attrs.get("groups", 1))
        act = node.attrs.get("activation", "none")
        return F.relu(y) if act == "relu" else F.relu6(y) if act == "relu6" else y

    def default_impl(self, node, precision, strategy):
        if self.depthwise(node):  # ours where it runs (fewer instructions: docs/benchmarks.md), else ACL's
            ours = precision == "float32" and _dw_nhwc(node)
            return "dw_nhwc" if ours else "depthwise_nchw" if _depthwise_nchw_only(node) else "depthwise"
        return super().default_impl(node, precision, strategy)

    def lower(self, node, ctx, impl):
        dilation = pair(node.attrs.get("dilation", 1))
        if dilation != (1, 1) and impl.function not in ("NEConvolutionLayer", "NEGEMMConvolutionLayer",
                                                         "NEDepthwiseConvolutionLayer"):
            raise UserError(f"{node.origin}: layer '{node.name}': {impl.function} has no dilation")
        fields = {**ctx.bind_constants(node, ("weights", "biases")), "pad_stride": pad_stride(node),
                  "act": FUSED_ACTIVATIONS.get(node.attrs.get("activation")),
                  "dilation": f"Size2D({dilation[1]}U, {dilation[0]}U)" if dilation != (1, 1) else None}
        if self.depthwise(node):
            fields["multiplier"] = node.attrs["filters"] // ctx.graph.shape_of(node.inputs[0])[0]
        return fields

    def summary(self, node):
        a = node.attrs
        kh, kw = pair(a["kernel"])
        kind = "depthwise " if self.depthwise(node) else ""
        text = f"{a['filters']} {kind}filters {kh}x{kw}, stride {a.get('stride', 1)}, pad {list(padding(a.get('pad', 0)))}"
        if pair(a.get("dilation", 1)) != (1, 1):
            text += f", dilation {a['dilation']}"
        text += "".join(f", {what}" for what in a.get("folded", []))
        text += f", {a['activation']} fused" if a.get("activation", "none") != "none" else ""
        text += f", {a['method']} (tuned)" if a.get("method") else ""
        return text
