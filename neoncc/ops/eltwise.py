"""Element-wise addition and multiplication of two tensors: residual connections (equal shapes) and
squeeze-excitation (the second input C x 1 x 1, broadcast over height and width)."""

from __future__ import annotations

from neoncc.errors import UserError
from neoncc.ops import Impl, Op, register
from neoncc.ops._common import ACTIVATION


class _Binary(Op):
    arity = 2
    quant = "own"

    def infer(self, node, shapes):
        a, b = shapes
        if b != a and b != (a[0], 1, 1):
            raise UserError(f"{node.origin}: layer '{node.name}': inputs {node.inputs} have shapes {list(a)} and "
                            f"{list(b)}: the second must equal the first or be {a[0]}x1x1 (one value per channel)")
        return a

    def summary(self, node):
        return f" {self.symbol} ".join(node.inputs)


@register
class Add(_Binary):
    """add: input: [a, b]; b may be C x 1 x 1."""

    name, doc, symbol = "add", "element-wise sum of two tensors", "+"
    fields = {"activation": ACTIVATION}
    implementations = {"acl": Impl("NEArithmeticAddition", template="add"),
                       "engine": Impl("engine::QuantizedAddition", template="add", layouts=("NCHW", "NHWC"),
                                      precisions=("int8",))}

    def reference(self, node, xs, w):
        return xs[0] + xs[1]


@register
class Mul(_Binary):
    """mul: input: [a, b]; b may be C x 1 x 1 (squeeze-excitation)."""

    name, doc, symbol = "mul", "element-wise product of two tensors", "x"
    quant = None
    implementations = {"acl": Impl("NEPixelWiseMultiplication", template="mul")}

    def reference(self, node, xs, w):
        return xs[0] * xs[1]
