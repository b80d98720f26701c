"""Resizing of height and width (ONNX Resize / Upsample, PyTorch's interpolate): nearest, linear or cubic, with
ONNX's coordinate transformations, rounding of nearest, antialiasing, and TensorFlow's crop-and-resize.

Resizing is separable: every output row is a weighted sum of a few input rows, every output column of a few input
columns, and which rows and weights depends only on the sizes and the fields, not on the values. So the compiler
works the taps out once (`taps`, per axis: the first input index and K weights per output index) and the kernel
(engine::Resize, runtime/resize.h) applies them: rows first, then columns. An output index whose source coordinate
falls outside the input under `coordinates: tf_crop_and_resize` gets `extrapolation_value`.
"""

from __future__ import annotations

import math

import numpy as np

from neoncc.errors import UserError
from neoncc.ops import Impl, Op, register
from neoncc.ops._common import c_float

MODES = ("nearest", "linear", "cubic")
COORDINATES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_half_pixel_for_nn", "tf_crop_and_resize")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
PAIR_NUMBER = {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 2, "maxItems": 2}


def source_coordinates(coordinates: str, out_len: int, in_len: int, scale: float,
                       roi: tuple[float, float]) -> np.ndarray:
    """Where each output index samples the input (in input pixels, 0 = the first pixel's centre), as ONNX's
    coordinate_transformation_mode defines it. `scale` is the one ONNX gives (out / in unless scales were given)."""
    x = np.arange(out_len, dtype=np.float64)
    length = scale * in_len  # ONNX uses the unrounded output length in these rules
    if coordinates == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if coordinates == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / length)
        return offset + (x + 0.5) / scale - 0.5
    if coordinates == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if length != 1 else np.full(out_len, -0.5)
    if coordinates == "align_corners":
        return x * (in_len - 1) / (length - 1) if length != 1 else np.zeros(out_len)
    if coordinates == "asymmetric":
        return x / scale
    if coordinates == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    start, end = roi  # tf_crop_and_resize: the region [start, end] of the input (0..1) onto the output
    if length == 1:
        return np.full(out_len, (end - start) * (in_len - 1) / 2 + start * (in_len - 1))
    return x * (end - start) * (in_len - 1) / (length - 1) + start * (in_len - 1)


def _cubic(distance: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel with parameter a."""
    d = np.abs(distance)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def taps(attrs: dict, in_len: int, out_len: int, scale: float, roi: tuple[float, float] = (0.0, 1.0)) \
        -> tuple[np.ndarray, np.ndarray]:
    """Per output index: the first input index it reads (-1: none, the extrapolation value) and K weights for the
    input indices first .. first + K - 1 (all within the input). Returns (first (out,), weights (out, K))."""
    mode = attrs.get("mode", "nearest")
    x = source_coordinates(attrs.get("coordinates", "half_pixel"), out_len, in_len, scale, roi)
    # ONNX's convention: the sample point lies in (base, base + 1]: an integer coordinate counts as ratio 1.
    base = np.floor(x)
    base = np.where(base == x, x - 1, base).astype(np.int64)
    ratio = x - base
    shrink = min(scale, 1.0) if attrs.get("antialias") else 1.0
    if mode == "nearest":
        rule = attrs.get("nearest_mode", "round_prefer_floor")
        upper = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5, "floor": ratio == 1.0,
                 "ceil": np.ones_like(ratio, bool)}[rule]
        offsets, weights = np.array([0, 1]), np.stack([~upper, upper], 1).astype(np.float64)
    elif mode == "linear":
        start = math.floor(-1 / shrink) + 1
        offsets = np.arange(start, 2 - start)
        weights = np.clip(1 - np.abs((offsets[None, :] - ratio[:, None]) * shrink), 0, 1)
    else:
        start = math.floor(-2 / shrink) + 1
        offsets = np.arange(start, 2 - start)
        weights = _cubic((offsets[None, :] - ratio[:, None]) * shrink, float(attrs.get("cubic_a", -0.75)))
    if mode != "nearest":
        weights = weights / weights.sum(1, keepdims=True) if shrink < 1 else weights
    indices = base[:, None] + offsets[None, :]
    if attrs.get("exclude_outside") and mode == "cubic":
        weights = np.where((indices < 0) | (indices >= in_len), 0.0, weights)
        weights = weights / weights.sum(1, keepdims=True)
    # Indices outside the input read its edge (ONNX pads with the edge values): fold them onto it.
    indices = np.clip(indices, 0, in_len - 1)
    span = min(int((indices.max(1) - indices.min(1)).max()) + 1, in_len)
    first = np.minimum(indices.min(1), in_len - span)  # every row's K inputs within the input
    dense = np.zeros((out_len, span))
    for k in range(indices.shape[1]):
        np.add.at(dense, (np.arange(out_len), indices[:, k] - first), weights[:, k])
    if attrs.get("coordinates") == "tf_crop_and_resize":
        outside = (x < 0) | (x > in_len - 1)
        first = np.where(outside, -1, first)
        dense[outside] = 0.0
    return first.astype(np.int64), dense.astype(np.float32)


@register
class Resize(Op):
    """resize: size [h, w]; mode nearest | linear | cubic; coordinates (ONNX's coordinate_transformation_mode);
    nearest_mode; cubic_a; exclude_outside; antialias; scale [h, w] (when given instead of the size);
    roi [top, left, bottom, right] and extrapolation_value (tf_crop_and_resize)."""

    name = "resize"
    doc = "resize height and width (nearest, linear, cubic)"
    fields = {"size": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2},
              "scale": PAIR_NUMBER,
              "mode": {"enum": list(MODES)},
              "coordinates": {"enum": list(COORDINATES)},
              "nearest_mode": {"enum": list(NEAREST)},
              "cubic_a": {"type": "number"},
              "exclude_outside": {"type": "boolean"},
              "antialias": {"type": "boolean"},
              "roi": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
              "extrapolation_value": {"type": "number"}}
    required = ("size",)
    quant = None
    group = "other"
    implementations = {"own": Impl("engine::Resize", template="resize")}

    def infer(self, node, shapes):
        c, h, w = shapes[0]
        oh, ow = node.attrs["size"]
        if node.attrs.get("antialias") and node.attrs.get("mode", "nearest") == "nearest":
            raise UserError(f"{node.origin}: layer '{node.name}': antialias applies to linear and cubic resizing "
                            "only")
        return (c, int(oh), int(ow))

    def axes(self, node, h: int, w: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The taps along height and along width."""
        oh, ow = node.attrs["size"]
        sh, sw = node.attrs.get("scale", (oh / h, ow / w))
        top, left, bottom, right = node.attrs.get("roi", (0.0, 0.0, 1.0, 1.0))
        return [taps(node.attrs, h, oh, sh, (top, bottom)), taps(node.attrs, w, ow, sw, (left, right))]

    def reference(self, node, xs, w):
        import torch
        x = xs[0]
        (fy, wy), (fx, wx) = self.axes(node, x.shape[2], x.shape[3])
        value = float(node.attrs.get("extrapolation_value", 0.0))
        rows, cols = (_dense(first, weights, size) for first, weights, size in
                      ((fy, wy, x.shape[2]), (fx, wx, x.shape[3])))
        out = torch.einsum("oh,nchw,pw->ncop", torch.from_numpy(rows).to(x.dtype), x,
                           torch.from_numpy(cols).to(x.dtype))
        outside = torch.from_numpy((fy < 0)[:, None] | (fx < 0)[None, :])
        return torch.where(outside, torch.tensor(value, dtype=x.dtype), out)

    def macs(self, node, shapes):
        c, h, w = shapes[0]
        (_, wy), (_, wx) = self.axes(node, h, w)
        oh, ow = node.attrs["size"]
        return c * (oh * w * wy.shape[1] + oh * ow * wx.shape[1])

    def lower(self, node, ctx, impl):
        _, h, w = ctx.graph.shape_of(node.inputs[0])
        (fy, wy), (fx, wx) = self.axes(node, h, w)

        def listed(values, spell) -> str:
            return "{" + ", ".join(spell(v) for v in values) + "}"
        tables = ", ".join([listed(fy.tolist(), str), listed(wy.ravel().tolist(), c_float), f"{wy.shape[1]}U",
                            listed(fx.tolist(), str), listed(wx.ravel().tolist(), c_float), f"{wx.shape[1]}U",
                            c_float(float(node.attrs.get("extrapolation_value", 0.0)))])
        return {"tables": f"engine::ResizeTables{{{tables}}}"}

    def summary(self, node):
        mode = node.attrs.get("mode", "nearest")
        return f"{mode} resize to {node.attrs['size'][0]}x{node.attrs['size'][1]}"


def _dense(first: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """The taps as an (out, in) matrix (rows of extrapolated indices are zero)."""
    matrix = np.zeros((len(first), size), np.float32)
    for o, start in enumerate(first.tolist()):
        if start >= 0:
            matrix[o, start:start + weights.shape[1]] = weights[o]
    return matrix
