"""Channel concatenation. The concat_in_place pass makes it free where it can (its producers write into channel
ranges of its tensor); what remains is a copying NEConcatenateLayer along the channel dimension of its layout."""

from __future__ import annotations

from neoncc.errors import UserError
from neoncc.ops import Impl, Op, register


@register
class Concat(Op):
    """concat: input: [a, b, ...], along channels."""

    name = "concat"
    doc = "concatenation along channels"
    fields = {"axis": {"const": "channel"}}
    arity = None
    quant = "own"
    implementations = {"acl": Impl("NEConcatenateLayer", template="concat", precisions=("float32", "int8"))}

    def infer(self, node, shapes):
        if len({s[1:] for s in shapes}) != 1:
            raise UserError(f"{node.origin}: layer '{node.name}': inputs {node.inputs} differ in height/width: "
                            f"{[list(s[1:]) for s in shapes]}")
        return (sum(s[0] for s in shapes), *shapes[0][1:])

    def reference(self, node, xs, w):
        import torch
        return torch.cat(xs, dim=1)

    def lower(self, node, ctx, impl):
        return {"axis": "Window::DimX" if ctx.layout(node.output) == "NHWC" else "Window::DimZ"}

    def summary(self, node):
        return "channel concatenation (copying)"
