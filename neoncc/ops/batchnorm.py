"""Batch normalization at inference: a per-channel affine map. After a convolution the fold_batchnorm pass folds it
into that convolution's constants; elsewhere (e.g. DenseNet's pre-activation) it runs as NEBatchNormalizationLayer."""

from __future__ import annotations

from neoncc.ir.graph import Param
from neoncc.ops import Impl, Op, register
from neoncc.ops._common import FUSED_ACTIVATIONS, c_float, same_shape

ROLES = ("weight", "bias", "running_mean", "running_var")


@register
class BatchNorm(Op):
    """batchnorm: eps (default 1e-5); weights <name>.weight, .bias, .running_mean, .running_var."""

    name = "batchnorm"
    doc = "batch normalization (folded into the convolution before it when there is one)"
    fields = {"eps": {"type": "number", "exclusiveMinimum": 0, "description": "default 1e-5"}}
    quant = "own"
    implementations = {"acl": Impl("NEBatchNormalizationLayer", template="batchnorm")}

    def infer(self, node, shapes):
        c = shapes[0][0]
        node.params = [Param(f"{node.name}.{p}", (c,)) for p in ROLES]
        return same_shape(self, node, shapes)

    def reference(self, node, xs, w):
        from torch.nn import functional as F
        n = node.name
        return F.batch_norm(xs[0], w[f"{n}.running_mean"], w[f"{n}.running_var"], w[f"{n}.weight"], w[f"{n}.bias"],
                            training=False, eps=float(node.attrs.get("eps", 1e-5)))

    def lower(self, node, ctx, impl):
        names = ctx.bind_constants(node, ("gamma", "beta", "mean", "var"))
        return {**names, "eps": c_float(float(node.attrs.get("eps", 1e-5))),
                "act": FUSED_ACTIVATIONS.get(node.attrs.get("activation"))}

    def summary(self, node):
        return "batch normalization (per-channel scale and shift)"
