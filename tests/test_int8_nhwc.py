"""The NHWC 8-bit convolution (runtime/quantized_convolution_nhwc.h, conv method qconv_nhwc) against integer
numpy, in odd shapes: 3 input channels with a 3x3 stride-2 padded kernel (K = 27, padded to 32), 13, 6, 17, 30
and 7 output channels (not multiples of 4), K = 13, 117, 207 and 750 (not multiples of 16: odd and even step
counts), a 1x1 layer with K = 80 (the gather's direct path: dense pixels, K a multiple of 16), an odd pixel count
(5 x 5: the last pair has one pixel), a 1x1 output (a 5x5 kernel on the 5x5 image); a copy-free NHWC concat (two
convolutions writing channel ranges of one tensor at its pixel stride); and the refusal of bad int8_float_layers
(mixed precision) entries."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import run_engine, scons
from int8_reference import requantize
from test_int8 import build_int8, corrected_bias

f32 = np.float32

MODEL = """name: odd_int8
input: {name: data, shape: [3, 9, 9]}
layers:
  - {name: conv1, type: conv, filters: 13, kernel: 3, stride: 2, pad: 1, activation: relu}
  - {name: a, type: conv, filters: 6, kernel: 1, input: conv1, activation: relu}
  - {name: b, type: conv, filters: 17, kernel: 3, pad: 1, input: conv1, activation: relu}
  - {name: cat, type: concat, input: [a, b]}
  - {name: conv3, type: conv, filters: 80, kernel: 3, pad: 1, activation: relu}
  - {name: e, type: conv, filters: 30, kernel: 1, activation: relu}
  - {name: conv4, type: conv, filters: 7, kernel: 5}
"""
LAYERS = {"conv1": (2, 1, True), "a": (1, 0, True), "b": (1, 1, True), "conv3": (1, 1, True), "e": (1, 0, True),
          "conv4": (1, 0, False)}
SHAPES = {"conv1": (13, 3, 3, 3), "a": (6, 13, 1, 1), "b": (17, 13, 3, 3), "conv3": (80, 23, 3, 3), "e": (30, 80, 1, 1),
          "conv4": (7, 30, 5, 5)}


def int8_conv(q, offset, scale, plan, name, w, b, stride, pad, relu):
    """One 8-bit convolution in integer numpy (C, H, W): (x - zero) . w + bias, then TFLite's reference
    requantization (tests/int8_reference.py: fixed-point input scale x weight scale / output scale, + output zero point,
    clamped)."""
    ws = np.asarray(plan["weight_scales"][name])
    wq = np.clip(np.round(w / ws[:, None, None, None]), -127, 127).astype(np.int64)
    bq = np.round(corrected_bias(plan, name, b) / (scale * ws)).astype(np.int64)
    x = np.pad(q - offset, ((0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    acc = np.zeros((w.shape[0], oh, ow), np.int64)
    for dy in range(kh):
        for dx in range(kw):
            acc += np.einsum("oc,chw->ohw", wq[:, :, dy, dx], x[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride])
    out_scale, out_offset = plan["tensors"][name]
    return requantize(acc + bq[:, None, None], scale, ws, out_scale, out_offset, relu), out_offset, out_scale


def numpy_engine(plan, weights, x):
    scale, offset = plan["tensors"]["data"]
    q = np.clip(np.round(x / scale) + offset, 0, 255).astype(np.int64)
    c1, o1, s1 = int8_conv(q, offset, scale, plan, "conv1", weights["conv1.weight"], weights["conv1.bias"], *LAYERS["conv1"])
    parts = [int8_conv(c1, o1, s1, plan, n, weights[f"{n}.weight"], weights[f"{n}.bias"], *LAYERS[n]) for n in ("a", "b")]
    assert parts[0][1:] == parts[1][1:] == tuple(plan["tensors"]["cat"][::-1])  # one quantization for the concat
    cat = np.concatenate([parts[0][0], parts[1][0]])
    c3, o3, s3 = int8_conv(cat, *plan["tensors"]["cat"][::-1], plan, "conv3", weights["conv3.weight"], weights["conv3.bias"], *LAYERS["conv3"])
    ce, oe, se = int8_conv(c3, o3, s3, plan, "e", weights["e.weight"], weights["e.bias"], *LAYERS["e"])
    c4, o4, s4 = int8_conv(ce, oe, se, plan, "conv4", weights["conv4.weight"], weights["conv4.bias"], *LAYERS["conv4"])
    return (c4 - o4) * f32(s4), s4


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    work = tmp_path_factory.mktemp("int8_nhwc")
    model = work / "odd_int8.yaml"
    model.write_text(MODEL)
    rng = np.random.default_rng(5)
    weights = {}
    for name, shape in SHAPES.items():
        weights[f"{name}.weight"] = rng.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape).astype(np.float32)
        weights[f"{name}.bias"] = rng.uniform(-0.2, 0.2, shape[0]).astype(np.float32)
    np.savez(work / "w.npz", **weights)
    calibration = work / "calibration"
    calibration.mkdir()
    grid = (rng.integers(-128, 128, (8, 3, 9, 9)) / 32).astype("<f4")  # input scale exactly 1/32 (minmax)
    grid.flat[:2] = (-4.0, 127 / 32)
    grid.tofile(calibration / "inputs.f32")
    tuning = work / "tuning.yaml"
    tuning.write_text("conv_method: {" + ", ".join(f"{n}: qconv_nhwc" for n in SHAPES) + "}\n")
    binary = build_int8(model, work / "build", calibration, f"weights={work / 'w.npz'}", "calibration_method=minmax",
                        f"tuning={tuning}")
    return work, model, binary, weights, calibration


def test_nhwc_int8_convolutions_match_integer_numpy(odd):
    work, _, binary, weights, _ = odd
    source = binary.with_suffix(".cpp").read_text()
    assert source.count("engine::QuantizedConvolutionNhwc ") == 6 and "NEConcatenateLayer" not in source
    x = (np.random.default_rng(6).integers(-128, 128, (3, 9, 9)) / 32).astype(np.float32)
    x.astype("<f4").tofile(work / "x.f32")
    plan = json.loads(binary.with_suffix(".quant.json").read_text())
    expected, scale = numpy_engine(plan, weights, x)
    assert expected.shape == (7, 1, 1)
    # One thread, and 4 at once (each with its own row buffer of the gather, made at configure), 3 runs each
    for threads in (1, 4):
        run_engine(binary, "--input", str(work / "x.f32"), "--output", str(work / "y.f32"), "--runs", "3", "--warmup", "0",
                   "--threads", str(threads))
        ours = np.fromfile(work / "y.f32", "<f4")
        assert ours.shape == (expected.size,)
        np.testing.assert_array_equal(np.round(ours / scale), np.round(expected.ravel() / scale))


@pytest.mark.parametrize("layers, message", [
    ("[nope]", "int8_float_layers: odd_int8 has no layer 'nope'"),
    ("[cat]", "int8_float_layers: 'cat' (concat) cannot run in float32 inside the 8-bit network"),
])
def test_bad_float_layers_are_refused_by_name(odd, tmp_path, layers, message):
    work, model, _, _, calibration = odd
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text(f"int8_float_layers: {layers}\n")
    with pytest.raises(AssertionError, match=re.escape(message)):
        build_int8(model, tmp_path / "build", calibration, f"weights={work / 'w.npz'}", f"tuning={tuning}")
    assert not (tmp_path / "build" / "armv7" / "odd_int8-int8" / "odd_int8").exists()


def test_mixed_precision_matches_integer_numpy(odd, tmp_path):
    """b (a 3x3 feeding the concat) in float32 between 8-bit layers: dequantize conv1, the float convolution,
    quantized at its store into the concat's channel range; checked against numpy doing the same."""
    work, model, _, weights, calibration = odd
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text("int8_float_layers: [b]\nconv_method: {conv1: qconv_nhwc, a: qconv_nhwc, b: winograd63, "
                      "conv3: qconv_nhwc, e: qconv_nhwc, conv4: qconv_nhwc}\nlayout: {b: NHWC}\n")
    binary = build_int8(model, tmp_path / "build", calibration, f"weights={work / 'w.npz'}", "calibration_method=minmax",
                        f"tuning={tuning}")
    source = binary.with_suffix(".cpp").read_text()
    assert "engine::Dequantization " in source and "NEConcatenateLayer" not in source
    assert source.count("engine::Quantization::validate(") == 1  # the input's: b's Winograd writes its own codes
    x = (np.random.default_rng(6).integers(-128, 128, (3, 9, 9)) / 32).astype(np.float32)
    x.astype("<f4").tofile(tmp_path / "x.f32")
    run_engine(binary, "--input", str(tmp_path / "x.f32"), "--output", str(tmp_path / "y.f32"), "--runs", "1", "--warmup", "0")
    ours = np.fromfile(tmp_path / "y.f32", "<f4")
    plan = json.loads(binary.with_suffix(".quant.json").read_text())
    scale, offset = plan["tensors"]["data"]
    q = np.clip(np.round(x / scale) + offset, 0, 255).astype(np.int64)
    c1, o1, s1 = int8_conv(q, offset, scale, plan, "conv1", weights["conv1.weight"], weights["conv1.bias"], *LAYERS["conv1"])
    a = int8_conv(c1, o1, s1, plan, "a", weights["a.weight"], weights["a.bias"], *LAYERS["a"])[0]
    # b in float32 (numpy, float64 then rounded to the concat's grid as the Winograd store does)
    xf = np.pad((c1 - o1) * f32(s1), ((0, 0), (1, 1), (1, 1))).astype(np.float64)
    wb = weights["b.weight"].astype(np.float64)
    yb = np.zeros((17, *c1.shape[1:]))
    for dy in range(3):
        for dx in range(3):
            yb += np.einsum("oc,chw->ohw", wb[:, :, dy, dx], xf[:, dy:dy + c1.shape[1], dx:dx + c1.shape[2]])
    yb = np.maximum(yb + weights["b.bias"][:, None, None], 0)
    cat_scale, cat_offset = plan["tensors"]["cat"]
    b = np.clip(np.floor(yb / cat_scale + cat_offset + 0.5), 0, 255).astype(np.int64)
    c3, o3, s3 = int8_conv(np.concatenate([a, b]), cat_offset, cat_scale, plan, "conv3", weights["conv3.weight"],
                           weights["conv3.bias"], *LAYERS["conv3"])
    ce, oe, se = int8_conv(c3, o3, s3, plan, "e", weights["e.weight"], weights["e.bias"], *LAYERS["e"])
    c4, o4, s4 = int8_conv(ce, oe, se, plan, "conv4", weights["conv4.weight"], weights["conv4.bias"], *LAYERS["conv4"])
    expected = ((c4 - o4) * f32(s4)).ravel()
    # Float32 Winograd against float64 may move a value across a rounding boundary of b's grid: one step there
    # moves the end result by at most a few steps; everything else is exact integer arithmetic.
    assert np.abs(np.round(ours / s4) - np.round(expected / s4)).max() <= 3
    assert (np.round(ours / s4) == np.round(expected / s4)).mean() >= 0.7


def test_multipliers_above_one_shift_left(tmp_path):
    """Scales given with int8_scales so that input scale x weight scale / output scale is 2.5 to 15 (left shifts
    2 to 4, the kernel's shifting output stage) on a dense 1x1 layer (K = 16, 6 channels, 3 x 5 pixels), against
    TFLite's reference requantization in integer numpy; small weights and inputs near the zero point keep most
    outputs inside 0..255, the rest saturate."""
    model = tmp_path / "shifted.yaml"
    model.write_text("name: shifted\ninput: {name: data, shape: [16, 3, 5]}\nlayers:\n"
                     "  - {name: c, type: conv, filters: 6, kernel: 1}\n")
    rng = np.random.default_rng(9)
    in_scale, in_offset, out_scale, out_offset = 1 / 16, 128, 0.00025, 120
    ws = 0.01 * np.arange(1, 7)
    wq = rng.integers(-1, 2, (6, 16, 1, 1))
    bq = rng.integers(-5, 6, 6)
    np.savez(tmp_path / "w.npz", **{"c.weight": (wq * ws[:, None, None, None]).astype(np.float32),
                                    "c.bias": (bq * in_scale * ws).astype(np.float32)})
    (tmp_path / "scales.json").write_text(json.dumps({"tensors": {"data": [in_scale, in_offset], "c": [out_scale, out_offset]},
                                                      "weight_scales": {"c": ws.tolist()}}))
    (tmp_path / "tuning.yaml").write_text("conv_method: {c: qconv_nhwc}\n")
    scons("target=armv7", f"model={model}", f"build_dir={tmp_path}", "precision=int8", f"weights={tmp_path / 'w.npz'}",
          f"int8_scales={tmp_path / 'scales.json'}", f"tuning={tmp_path / 'tuning.yaml'}")
    binary = tmp_path / "armv7" / "shifted-int8" / "shifted"
    assert "engine::QuantizedConvolutionNhwc " in binary.with_suffix(".cpp").read_text()
    q = rng.integers(in_offset - 6, in_offset + 7, (16, 3, 5))
    ((q - in_offset) * f32(in_scale)).astype("<f4").tofile(tmp_path / "x.f32")
    run_engine(binary, "--input", str(tmp_path / "x.f32"), "--output", str(tmp_path / "y.f32"), "--runs", "1", "--warmup", "0")
    ours = np.round(np.fromfile(tmp_path / "y.f32", "<f4") / f32(out_scale)) + out_offset
    acc = np.einsum("oc,chw->ohw", wq[:, :, 0, 0], q - in_offset) + bq[:, None, None]
    expected = requantize(acc, in_scale, ws, out_scale, out_offset, False)
    assert ((expected > 0) & (expected < 255)).mean() > 0.5 and ((expected == 0) | (expected == 255)).any()
    np.testing.assert_array_equal(ours, expected.ravel())


FUSED = """name: fused_q
input: {name: data, shape: [5, 11, 13]}
layers:
  - {name: a, type: conv, filters: 6, kernel: 3, pad: 1, activation: relu}
  - {name: b, type: conv, filters: 7, kernel: 3, pad: 1, input: a}
  - {name: c, type: conv, filters: 9, kernel: 3, pad: 1, input: a, activation: relu6}
  - {name: cat, type: concat, input: [b, c]}
  - {name: pool, type: maxpool, kernel: 2, stride: 1}
"""


@pytest.mark.parametrize("methods, threads", [(("winograd63", "winograd43"), 1), (("winograd63", "winograd43"), 3),
                                             (("packed_gemm", "packed_gemm"), 1), (("packed_gemm", "packed_gemm"), 3)])
def test_float_kernels_write_the_8_bit_codes_of_their_quantization(tmp_path, methods, threads):
    """A float32 Winograd or packed GEMM convolution between 8-bit layers writes its output's QASYMM8 codes
    itself (passes/fuse_quantize.py: no engine::Quantization after it): b (F(6x6, 3x3) or GEMM, no activation, so
    the concat's zero point is above 0) and c (F(4x4, 3x3) or GEMM, ReLU6: both bounds fall inside 0..255 on that
    grid), 7 and 9 channels (the last 4-channel group, or 8-column block, partial), 11 x 13 pixels (partial tiles and
    panels), c starting at channel 7 of the concat (an unaligned byte). The 8-bit max pooling after them passes the
    codes through, so the engine's output gives them back: against numpy's round(x / scale) + zero point of float64
    convolutions, all but a few at a rounding boundary exact."""
    model = tmp_path / "fused_q.yaml"
    model.write_text(FUSED)
    rng = np.random.default_rng(21)
    shapes = {"a": (6, 5, 3, 3), "b": (7, 6, 3, 3), "c": (9, 6, 3, 3)}
    weights = {}
    for name, shape in shapes.items():
        weights[f"{name}.weight"] = rng.normal(0, 2 * np.sqrt(2 / np.prod(shape[1:])), shape).astype(np.float32)
        weights[f"{name}.bias"] = rng.uniform(-0.5, 0.5, shape[0]).astype(np.float32)
    np.savez(tmp_path / "w.npz", **weights)
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    (rng.integers(-128, 128, (8, 5, 11, 13)) / 32).astype("<f4").tofile(calibration / "inputs.f32")
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text(f"int8_float_layers: [b, c]\nconv_method: {{a: qconv_nhwc, b: {methods[0]}, c: {methods[1]}}}\n"
                      "layout: {a: NHWC, b: NHWC, c: NHWC, pool: NHWC}\n")
    binary = build_int8(model, tmp_path / "build", calibration, f"weights={tmp_path / 'w.npz'}",
                        "calibration_method=minmax", f"tuning={tuning}")
    source = binary.with_suffix(".cpp").read_text()
    assert "engine::Quantization::validate(" in source  # the input's
    assert "b.quantize" not in source and "c.quantize" not in source and "NEConcatenateLayer" not in source
    function = {"winograd63": "WinogradConvolution", "winograd43": "WinogradConvolution43",
                "packed_gemm": "PackedGemmConvolution"}
    assert f"engine::{function[methods[0]]} b_" in source and f"engine::{function[methods[1]]} c_" in source
    assert re.search(r"b_out_ = SubTensor\(&cat_out_", source) and "engine::QuantizedMaxPoolingNhwc pool_" in source

    x = (rng.integers(-128, 128, (5, 11, 13)) / 32).astype(np.float32)
    x.astype("<f4").tofile(tmp_path / "x.f32")
    run_engine(binary, "--input", str(tmp_path / "x.f32"), "--output", str(tmp_path / "y.f32"), "--runs", "2",
               "--warmup", "0", "--threads", str(threads))
    plan = json.loads(binary.with_suffix(".quant.json").read_text())
    scale, offset = plan["tensors"]["data"]
    q = np.clip(np.round(x / scale) + offset, 0, 255).astype(np.int64)
    a, a_offset, a_scale = int8_conv(q, offset, scale, plan, "a", weights["a.weight"], weights["a.bias"], 1, 1, True)
    xa = np.pad((a - a_offset) * f32(a_scale), ((0, 0), (1, 1), (1, 1))).astype(np.float64)

    def float_conv(name):
        w = weights[f"{name}.weight"].astype(np.float64)
        y = np.zeros((w.shape[0], 11, 13))
        for dy in range(3):
            for dx in range(3):
                y += np.einsum("oc,chw->ohw", w[:, :, dy, dx], xa[:, dy:dy + 11, dx:dx + 13])
        return y + weights[f"{name}.bias"][:, None, None]

    cat_scale, cat_offset = plan["tensors"]["cat"]
    assert cat_offset > 0
    grid = lambda v: np.clip(np.floor(v / cat_scale + cat_offset + 0.5), 0, 255).astype(np.int64)  # noqa: E731
    b, c = grid(float_conv("b")), grid(np.clip(float_conv("c"), 0, 6))
    assert (c == cat_offset).any() and (c == grid(6.0)).any() and grid(6.0) < 255  # both ReLU6 bounds reached
    cat = np.concatenate([b, c])
    expected = np.max([cat[:, dy:dy + 10, dx:dx + 12] for dy in (0, 1) for dx in (0, 1)], axis=0)
    pool_scale, pool_offset = plan["tensors"]["pool"]
    assert (pool_scale, pool_offset) == (cat_scale, cat_offset)
    ours = np.round(np.fromfile(tmp_path / "y.f32", "<f4").reshape(expected.shape) / f32(pool_scale)) + pool_offset
    assert np.abs(ours - expected).max() <= 1 and (ours == expected).mean() >= 0.99
