"""Element-wise activations, each one ACL NEActivationLayer (ReLU, ReLU6, sigmoid, hard-swish, leaky ReLU, the
dropout attenuation's scale, an affine map, a clamp), or two of them (hard-sigmoid: linear then clamp)."""

from __future__ import annotations

from neoncc.ops import Impl, Op, register
from neoncc.ops._common import c_float, same_shape

_ACTIVATION = Impl("NEActivationLayer", template="activation", precisions=("float32", "int8"))
_F = "ActivationLayerInfo::ActivationFunction::"


class _Activation(Op):
    implementations = {"acl": _ACTIVATION}
    infer = same_shape

    def info(self, node) -> list[str]:
        """ACL ActivationLayerInfo(s) applied one after the other."""
        raise NotImplementedError

    def lower(self, node, ctx, impl):
        return {"infos": self.info(node)}

    def summary(self, node):
        return self.doc


@register
class Relu(_Activation):
    """relu: max(0, x)."""

    name, doc, quant = "relu", "ReLU", "inherit"

    def info(self, node):
        return [f"ActivationLayerInfo({_F}RELU)"]

    def reference(self, node, xs, w):
        return xs[0].clamp(min=0)


@register
class Relu6(_Activation):
    """relu6: min(6, max(0, x)), ACL's bounded ReLU."""

    name, doc, quant = "relu6", "ReLU6", "inherit"

    def info(self, node):
        return [f"ActivationLayerInfo({_F}BOUNDED_RELU, 6.f)"]

    def reference(self, node, xs, w):
        return xs[0].clamp(0, 6)


@register
class Sigmoid(_Activation):
    """sigmoid: 1 / (1 + exp(-x))."""

    name, doc, quant = "sigmoid", "sigmoid", "own"

    def info(self, node):
        return [f"ActivationLayerInfo({_F}LOGISTIC)"]

    def reference(self, node, xs, w):
        return xs[0].sigmoid()


@register
class HardSwish(_Activation):
    """hardswish: x * relu6(x + 3) / 6."""

    name, doc, quant = "hardswish", "hard-swish", "own"

    def info(self, node):
        return [f"ActivationLayerInfo({_F}HARD_SWISH)"]

    def reference(self, node, xs, w):
        return xs[0] * (xs[0] + 3).clamp(0, 6) / 6


@register
class HardSigmoid(_Activation):
    """hardsigmoid: max(0, min(1, alpha * x + beta)); PyTorch's is alpha 1/6, beta 0.5 (the defaults)."""

    name, doc, quant = "hardsigmoid", "hard-sigmoid", "own"
    fields = {"alpha": {"type": "number"}, "beta": {"type": "number"}}

    def info(self, node):
        alpha, beta = node.attrs.get("alpha", 1 / 6), node.attrs.get("beta", 0.5)
        return [f"ActivationLayerInfo({_F}LINEAR, {c_float(alpha)}, {c_float(beta)})",
                f"ActivationLayerInfo({_F}LU_BOUNDED_RELU, 1.f, 0.f)"]

    def reference(self, node, xs, w):
        return (xs[0] * node.attrs.get("alpha", 1 / 6) + node.attrs.get("beta", 0.5)).clamp(0, 1)


@register
class LeakyRelu(_Activation):
    """leaky_relu: x for x >= 0, alpha * x below."""

    name, doc, quant = "leaky_relu", "leaky ReLU", "own"
    fields = {"alpha": {"type": "number", "description": "default 0.01"}}

    def info(self, node):
        return [f"ActivationLayerInfo({_F}LEAKY_RELU, {c_float(node.attrs.get('alpha', 0.01))})"]

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        return F.leaky_relu(xs[0], node.attrs.get("alpha", 0.01))


@register
class Scale(_Activation):
    """scale: x * factor (what remains of a non-inverted dropout's attenuation when no convolution can absorb it)."""

    name, doc, quant, yaml = "scale", "multiplication by a constant", "own", False

    def info(self, node):
        return [f"ActivationLayerInfo({_F}LINEAR, {c_float(node.attrs['factor'])}, 0.f)"]

    def reference(self, node, xs, w):
        return xs[0] * float(node.attrs["factor"])

    def summary(self, node):
        return f"x{node.attrs['factor']} (dropout attenuation)"


@register
class Affine(_Activation):
    """affine: alpha * x + beta with scalar alpha, beta (ONNX's Add/Sub/Mul/Div by a constant), ACL's LINEAR."""

    name, doc, quant = "affine", "affine map", "own"
    fields = {"alpha": {"type": "number", "description": "default 1"},
              "beta": {"type": "number", "description": "default 0"}}

    def info(self, node):
        return [f"ActivationLayerInfo({_F}LINEAR, {c_float(node.attrs.get('alpha', 1.0))}, "
                f"{c_float(node.attrs.get('beta', 0.0))})"]

    def reference(self, node, xs, w):
        return xs[0] * float(node.attrs.get("alpha", 1.0)) + float(node.attrs.get("beta", 0.0))

    def summary(self, node):
        return f"{node.attrs.get('alpha', 1.0)} * x + {node.attrs.get('beta', 0.0)}"


@register
class Clip(_Activation):
    """clip: min(max, max(min, x)) (ONNX's Clip), ACL's LU_BOUNDED_RELU."""

    name, doc, quant = "clip", "clamp to [min, max]", "own"
    fields = {"min": {"type": "number"}, "max": {"type": "number"}}
    required = ("min", "max")

    def info(self, node):
        return [f"ActivationLayerInfo({_F}LU_BOUNDED_RELU, {c_float(node.attrs['max'])}, "
                f"{c_float(node.attrs['min'])})"]

    def reference(self, node, xs, w):
        return xs[0].clamp(float(node.attrs["min"]), float(node.attrs["max"]))

    def summary(self, node):
        return f"clamp to [{node.attrs['min']}, {node.attrs['max']}]"
