"""Softmax over the classes (a C x 1 x 1 tensor, seen as a vector)."""

from __future__ import annotations

from neoncc.errors import UserError
from neoncc.ops import Impl, Op, register


@register
class Softmax(Op):
    """softmax: over the channels of a 1x1 tensor."""

    name = "softmax"
    doc = "softmax over the classes"
    quant = "float"
    group = "pool+softmax"
    implementations = {"acl": Impl("NESoftmaxLayer", template="softmax", scratch=True, extra=("NEReshapeLayer",))}

    def infer(self, node, shapes):
        c, h, w = shapes[0]
        if h * w != 1:
            raise UserError(f"{node.origin}: layer '{node.name}': softmax needs a 1x1 input (pool it first), "
                            f"got {c}x{h}x{w}")
        return (c, 1, 1)

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        return F.softmax(xs[0].flatten(1), dim=1)[:, :, None, None]

    def lower(self, node, ctx, impl):
        producer = ctx.graph.producer(node.inputs[0])
        if producer is not None and producer.op == "fc":
            return {"flat": None}  # a fully connected layer's output is a vector already
        if node.attrs.get("layout") == "NHWC":
            return {"flat": None}  # C x 1 x 1 in NHWC: dimension 0 is the channels, what ACL's softmax reduces over
        return {"flat": ctx.vector_of(node.inputs[0], f"{node.inputs[0]} as a vector, for {node.name}"),
                "flatten_fn": ctx.identifier(node.name) + "_flatten_"}

    def summary(self, node):
        return self.doc
