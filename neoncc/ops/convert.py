"""The 8-bit engine's two conversions: float32 to QASYMM8 and back, inserted by the quantize pass where the
precision changes: at the input and before the float32 tail, and around layers a tuning file keeps in float32."""

from __future__ import annotations

from neoncc.ops import Impl, Op, register
from neoncc.ops._common import same_shape


class _Convert(Op):
    yaml = False
    infer = same_shape

    def reference(self, node, xs, w):
        return xs[0]  # the host reference runs in float32 throughout


@register
class Quantize(_Convert):
    """quantize: float32 to QASYMM8 (the quantize pass puts one at the input)."""

    name, doc, quant = "quantize", "float32 to QASYMM8, once for the whole network", "own"
    # Ours rounds to nearest; ACL 20.08's NEQuantizationLayer truncates on armv7 (runtime/quantization.h).
    # It writes row by row at any strides: its output can be a channel range of a concatenated tensor.
    implementations = {"engine": Impl("engine::Quantization", template="convert", precisions=("int8",),
                                      strided_output=True)}

    def summary(self, node):
        return self.doc


@register
class Dequantize(_Convert):
    """dequantize: QASYMM8 to float32 (once, before the float32 tail)."""

    name, doc, quant = "dequantize", "QASYMM8 to float32, once for the whole network", "float"
    group = "pool+softmax"
    # Ours (runtime/dequantization.h) costs a few instructions per value, ACL 20.08's about 70 on a short vector.
    implementations = {"engine": Impl("engine::Dequantization", template="convert", precisions=("int8",)),
                       "acl": Impl("NEDequantizationLayer", template="convert", precisions=("int8",))}

    def summary(self, node):
        return self.doc
