"""Parametric ReLU with one slope per channel (TFLite's PRELU, ONNX's PRelu): x for x >= 0, alpha[c] * x below.
One slope for all channels is `leaky_relu`."""

from __future__ import annotations

from neoncc.ir.graph import Param
from neoncc.ops import Impl, Op, register
from neoncc.ops._common import same_shape


@register
class PRelu(Op):
    """prelu: weights <name>.weight, one slope per channel."""

    name = "prelu"
    doc = "parametric ReLU, one slope per channel"
    quant = None
    # ACL broadcasts the slopes: C x 1 x 1 over an NCHW tensor, a C vector over an NHWC one.
    implementations = {"acl": Impl("NEPReluLayer", template="prelu")}

    def infer(self, node, shapes):
        node.params = [Param(f"{node.name}.weight", (shapes[0][0],))]
        return same_shape(self, node, shapes)

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        return F.prelu(xs[0], w[f"{node.name}.weight"])

    def lower(self, node, ctx, impl):
        channels = ctx.graph.shape_of(node.inputs[0])[0]
        view = (channels, 1, 1) if ctx.layout(node.inputs[0]) == "NCHW" else (channels,)
        return ctx.bind_constants(node, ("alpha",), views={"alpha": view})

    def summary(self, node):
        return "PReLU (a slope per channel)"
