"""What several ops share: YAML field fragments, ACL spellings of activations, and the sliding-window rule."""

from __future__ import annotations

from neoncc.errors import UserError
from neoncc.ir.shapes import pair, padding, same_padding, window_output

SIZE2 = {"$ref": "#/$defs/size2"}
PADDING = {"$ref": "#/$defs/padding"}
ACTIVATION = {"$ref": "#/$defs/activation"}

# Activations ACL fuses into a convolution's (or batch normalization's) output stage.
FUSED_ACTIVATIONS = {
    "relu": "ActivationLayerInfo(ActivationLayerInfo::ActivationFunction::RELU)",
    "relu6": "ActivationLayerInfo(ActivationLayerInfo::ActivationFunction::BOUNDED_RELU, 6.f)",
}


def c_float(value: float) -> str:
    """A float literal C++ reads back to the same float32 (9 significant digits), always with '.' or an exponent."""
    text = f"{value:.9g}"
    return (text if any(c in text for c in ".en") else text + ".") + "f"


def window(node, c: int, h: int, w: int, out_channels: int) -> tuple[int, int, int]:
    """Output shape of a sliding window (convolution, pooling); resolves `pad: same` to numbers once, so every later
    stage sees numbers."""
    kh, kw = pair(node.attrs["kernel"])
    sh, sw = pair(node.attrs.get("stride", 1))
    dh, dw = pair(node.attrs.get("dilation", 1))
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1  # the kernel's extent with its dilation
    if node.attrs.get("pad") == "same":
        node.attrs["pad"] = [*same_padding(h, ekh, sh), *same_padding(w, ekw, sw)]
    top, bottom, left, right = padding(node.attrs.get("pad", 0))
    if ekh > h + top + bottom or ekw > w + left + right:
        raise UserError(f"{node.origin}: layer '{node.name}': kernel {ekh}x{ekw} is larger than its padded "
                        f"input {h + top + bottom}x{w + left + right}")
    ceil, rule = node.attrs.get("rounding", "floor") == "ceil", node.attrs.get("ceil_rule", "caffe")
    return (out_channels, window_output(h, ekh, sh, top, bottom, ceil, rule),
            window_output(w, ekw, sw, left, right, ceil, rule))


def pad_stride(node) -> str:
    """ACL's PadStrideInfo arguments: stride x, y, then pad left, right, top, bottom."""
    sy, sx = pair(node.attrs.get("stride", 1))
    top, bottom, left, right = padding(node.attrs.get("pad", 0))
    return f"{sx}U, {sy}U, {left}U, {right}U, {top}U, {bottom}U"


def torch_pad(x, node, fill: float):
    """Explicit (possibly asymmetric) padding, as the engine's padding is given per side."""
    from torch.nn import functional as F
    top, bottom, left, right = padding(node.attrs.get("pad", 0))
    return F.pad(x, (left, right, top, bottom), value=fill) if any((top, bottom, left, right)) else x


def same_shape(op, node, shapes):
    """The shape rule of an element-wise op (used as an Op method)."""
    return shapes[0]
