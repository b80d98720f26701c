"""The ops added through the op registry, end to end: each built into an engine (in both layouts) and run under
qemu-arm, against the same network written here by hand in PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from conftest import ROOT, build, infer
from neoncc.frontend.yaml_model import load_yaml_model

MODEL = ROOT / "tests/models/new_ops.yaml"


def reference(w: dict, x: torch.Tensor) -> torch.Tensor:
    """tests/models/new_ops.yaml, written by hand."""
    c1 = F.conv2d(x, w["c1.weight"], w["c1.bias"], padding=1)
    bn = F.batch_norm(x, w["bn.running_mean"], w["bn.running_var"], w["bn.weight"], w["bn.bias"], eps=1e-5)
    c0 = F.conv2d(bn, w["c0.weight"], w["c0.bias"])
    hs = F.hardswish(c1 + c0)
    gate = F.conv2d(F.relu(F.conv2d(hs.mean((2, 3), keepdim=True), w["se_reduce.weight"], w["se_reduce.bias"])),
                    w["se_expand.weight"], w["se_expand.bias"]).sigmoid()
    se = hs * gate
    n, c, h, width = se.shape
    shuffled = se.view(n, 3, c // 3, h, width).transpose(1, 2).reshape(n, c, h, width)
    lr = F.leaky_relu(shuffled[:, :5], 0.1)
    sw = F.silu(shuffled[:, 5:])
    dil = F.conv2d(sw, w["dil.weight"], w["dil.bias"], padding=2, dilation=2)
    hsig = (F.adaptive_max_pool2d(lr, 1) * 0.2 + 0.5).clamp(0, 1)
    return torch.cat([dil * hsig, lr], dim=1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    work = tmp_path_factory.mktemp("new_ops")
    rng = np.random.default_rng(5)
    arrays = {p.name: rng.normal(0, 0.4, p.shape).astype(np.float32) for p in load_yaml_model(MODEL).params}
    arrays["bn.running_var"] = rng.uniform(0.5, 1.5, arrays["bn.running_var"].shape).astype(np.float32)
    np.savez(work / "w.npz", **arrays)
    return work, arrays


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_new_ops_match_pytorch(weights, layout):
    work, arrays = weights
    binary = build(MODEL, work / layout, work / "w.npz", f"layout={layout}")
    x = np.random.default_rng(9).normal(0, 1, (1, 6, 15, 13)).astype(np.float32)
    ours, _ = infer(binary, x[0], work)
    with torch.no_grad():
        expected = reference({k: torch.from_numpy(v) for k, v in arrays.items()}, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, expected.ravel(), rtol=1e-4, atol=1e-5)


def numpy_max_pool(x: np.ndarray, kernel, stride, pad, out_hw) -> np.ndarray:
    """Max over each window of the input clipped to the input (padding never wins), written with plain numpy."""
    c, h, w = x.shape
    (kh, kw), (sh, sw), (top, left) = kernel, stride, pad
    out = np.empty((c, *out_hw), np.float32)
    for oy in range(out_hw[0]):
        for ox in range(out_hw[1]):
            y0, x0 = oy * sh - top, ox * sw - left
            window = x[:, max(y0, 0):min(y0 + kh, h), max(x0, 0):min(x0 + kw, w)]
            out[:, oy, ox] = window.max(axis=(1, 2))
    return out


@pytest.mark.parametrize("layout, target", [("nhwc", "armv7"), ("nchw", "armv7"), ("nhwc", "aarch64")])
def test_max_pooling_odd_shapes_match_numpy(tmp_path, layout, target):
    model = ROOT / "tests/models/max_pools.yaml"
    shapes = {n.name: n.shape for n in load_yaml_model(model).nodes}
    assert shapes == {"b": (7, 17, 6), "c": (7, 6, 2), "e": (7, 4, 2)}  # ONNX's rule drops c's last column
    binary = build(model, tmp_path / layout, None, f"layout={layout}", target=target)
    if layout == "nhwc":
        assert binary.with_suffix(".cpp").read_text().count("engine::MaxPoolingNhwc ") == 3
    x = np.random.default_rng(4).normal(0, 1, (7, 17, 12)).astype(np.float32)
    ours, _ = infer(binary, x, tmp_path, target=target)
    b = numpy_max_pool(x, (2, 3), (1, 2), (1, 1), shapes["b"][1:])
    c = numpy_max_pool(b, (2, 2), (3, 3), (0, 0), shapes["c"][1:])
    e = numpy_max_pool(c, (3, 3), (2, 2), (1, 1), shapes["e"][1:])
    np.testing.assert_array_equal(ours.reshape(shapes["e"]), e)


def run_small_model(file: str, layout: str, seed: int, input_shape: tuple, work) -> tuple:
    """tests/models/<file> with seeded random weights, built in a layout and run on a random input under qemu-arm:
    (our output, the input, the weights as arrays, the weights as tensors)."""
    model = ROOT / "tests/models" / file
    rng = np.random.default_rng(seed)
    arrays = {p.name: rng.normal(0, 0.5, p.shape).astype(np.float32) for p in load_yaml_model(model).params}
    np.savez(work / "w.npz", **arrays)
    binary = build(model, work / layout, work / "w.npz", f"layout={layout}")
    x = rng.normal(0, 1, input_shape).astype(np.float32)
    ours, _ = infer(binary, x, work)
    return ours, x, arrays, {k: torch.from_numpy(v) for k, v in arrays.items()}


def numpy_prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, slope[:, None, None] * x)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_prelu_matches_numpy(tmp_path, layout):
    """A slope per channel (ACL's NEPReluLayer broadcasting them) against numpy; the convolutions by PyTorch."""
    ours, x, arrays, w = run_small_model("prelu.yaml", layout, 11, (5, 11, 9), tmp_path)
    with torch.no_grad():
        c1 = F.conv2d(torch.from_numpy(x)[None], w["c1.weight"], w["c1.bias"], padding=1)[0].numpy()
        p1 = numpy_prelu(c1, arrays["p1.weight"])
        dw = F.conv2d(F.pad(torch.from_numpy(p1)[None], (0, 1, 0, 1)), w["dw.weight"], w["dw.bias"], stride=2,
                      groups=7)[0].numpy()
        p2 = numpy_prelu(dw, arrays["p2.weight"])
        c2 = F.conv2d(torch.from_numpy(p2)[None], w["c2.weight"], w["c2.bias"])[0].numpy()
    assert (c2 + p2 < 0).mean() > 0.2 and (dw < 0).mean() > 0.2, "the negative side must be exercised"
    expected = numpy_prelu(c2 + p2, arrays["p3.weight"])
    np.testing.assert_allclose(ours, expected.ravel(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_flatten_in_hwc_order_matches_numpy(tmp_path, layout):
    """flatten: values in height, width, channel order (numpy's transpose of the convolutions' outputs)."""
    ours, x, _, w = run_small_model("flatten.yaml", layout, 12, (4, 9, 7), tmp_path)
    with torch.no_grad():
        big = F.conv2d(torch.from_numpy(x)[None], w["big.weight"], w["big.bias"], padding=1)[0].numpy()
        small = F.conv2d(torch.from_numpy(x)[None], w["small.weight"], w["small.bias"], stride=2)[0].numpy()
    expected = np.concatenate([big.transpose(1, 2, 0).ravel(), small.transpose(1, 2, 0).ravel()])
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


def test_pad_and_resize_match_pytorch(tmp_path):
    """tests/models/resize_pad.yaml in both layouts, against PyTorch's F.pad and F.interpolate (written here; the
    taps the compiler works out are its own, neoncc/ops/resize.py). Antialiasing is left to the ONNX node tests:
    PyTorch's drops the taps outside the image where ONNX's repeats the edge."""
    x = np.random.default_rng(3).normal(0, 1, (1, 6, 15, 13)).astype(np.float32)
    t = torch.from_numpy(x)
    padded = F.pad(F.pad(t, (2, 1, 1, 0), value=0.5), (1, 2, 2, 1), mode="reflect")
    linear = F.interpolate(padded, size=(22, 9), mode="bilinear", align_corners=False)
    nearest = F.interpolate(linear, size=(31, 20), mode="nearest")
    expected = F.interpolate(nearest, size=(12, 7), mode="bicubic", align_corners=False)
    for layout in ("nchw", "nhwc"):
        binary = build(ROOT / "tests/models/resize_pad.yaml", tmp_path / layout, None, f"layout={layout}")
        ours, _ = infer(binary, x[0], tmp_path)
        np.testing.assert_allclose(ours, expected.numpy().ravel(), rtol=1e-4, atol=1e-5, err_msg=layout)
