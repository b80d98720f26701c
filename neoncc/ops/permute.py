"""A layout conversion (NCHW <-> NHWC) that the layout pass inserts where a producer and a consumer disagree."""

from __future__ import annotations

from neoncc.ops import Impl, Op, register
from neoncc.ops._common import same_shape


@register
class Permute(Op):
    """permute: to (NCHW or NHWC); inserted by the layout pass, never written in a model description."""

    name = "permute"
    doc = "layout conversion"
    yaml = False
    quant = "inherit"
    # The layout pass takes the first one that runs the node in its precision (ours: NCHW -> NHWC in float32 or
    # 8 bits, e.g. the engine's input before an NHWC first convolution; runtime/permute_to_nhwc.h).
    implementations = {"nhwc": Impl("engine::PermuteToNhwc", template="permute", precisions=("float32", "int8"),
                                    requires=(lambda node: node.attrs["to"] == "NHWC", "a conversion to NHWC")),
                       "acl": Impl("NEPermute", template="permute", precisions=("float32", "int8"))}
    infer = same_shape

    def reference(self, node, xs, w):
        return xs[0]  # the values are the same; only their order in memory changes

    def lower(self, node, ctx, impl):
        # ACL's permutation vector maps output dimensions to input ones; (W, H, C) <-> (C, W, H).
        return {"perm": "PermutationVector(2U, 0U, 1U)" if node.attrs["to"] == "NHWC" else "PermutationVector(1U, 2U, 0U)"}

    def summary(self, node):
        return f"to {node.attrs['to']}"
