"""Flattening in height, width, channel order (TFLite's RESHAPE of an NHWC tensor, e.g. detection heads' [1, H, W,
A * K] -> [1, H * W * A, K]): a C x H x W tensor becomes a vector of H * W * C values, as NHWC memory holds them.
On an NHWC tensor that is a plain copy (ACL's NEReshapeLayer); the layout pass converts an NCHW input first."""

from __future__ import annotations

from neoncc.ops import Impl, Op, register


@register
class Flatten(Op):
    """flatten: to a vector of H * W * C values in height, width, channel order."""

    name = "flatten"
    doc = "flattening in height, width, channel order (NHWC memory order)"
    quant = "inherit"
    implementations = {"acl": Impl("NEReshapeLayer", template="flatten", layouts=("NHWC",),
                                   precisions=("float32", "int8"))}

    def infer(self, node, shapes):
        c, h, w = shapes[0]
        return (c * h * w, 1, 1)

    def reference(self, node, xs, w):
        return xs[0].permute(0, 2, 3, 1).reshape(xs[0].shape[0], -1, 1, 1)

    def summary(self, node):
        return "flattened in H, W, C order"
