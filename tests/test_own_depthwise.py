"""Our NHWC depthwise convolution (engine::DepthwiseConvolution, runtime/depthwise_convolution.h), cross-built and
run under qemu-arm / qemu-aarch64 in two networks of odd shapes (tests/models/depthwise_convs.yaml: 13, 5 and 16
channels on images wide enough for the groups read in place; tests/models/depthwise_tiny.yaml: 2x3, 1x2 and 1x1
images of 3, 5 and 13 channels), against depthwise convolutions written here with plain numpy; and refused by name
where it cannot run."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT, build, infer, scons
from neoncc.frontend.yaml_model import load_yaml_model


def numpy_depthwise(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad=(0, 0, 0, 0)) -> np.ndarray:
    """x: C x H x W, w: C x 1 x k x k, pad (top, bottom, left, right): channel c's window times filter c, float64."""
    top, bottom, left, right = pad
    x = np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right)))
    k = w.shape[2]
    oh, ow = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], oh, ow))
    for c in range(x.shape[0]):
        for y in range(oh):
            for i in range(ow):
                window = x[c, y * stride:y * stride + k, i * stride:i * stride + k]
                out[c, y, i] = (window * w[c, 0]).sum() + b[c]
    return out


def numpy_pointwise(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("oc,chw->ohw", w[:, :, 0, 0].astype(np.float64), x) + b[:, None, None]


def relu(v):
    return np.maximum(v, 0)


def relu6(v):
    return np.clip(v, 0, 6)


def reference_convs(w: dict, x: np.ndarray) -> np.ndarray:
    dw = lambda name, v, s, pad: numpy_depthwise(v, w[f"{name}.weight"], w[f"{name}.bias"], s, pad)  # noqa: E731
    pw = lambda name, v: numpy_pointwise(v, w[f"{name}.weight"], w[f"{name}.bias"])  # noqa: E731
    d1 = relu(dw("d1", x, 1, (1, 0, 2, 1)))
    d2 = relu6(dw("d2", d1, 2, (2, 1, 1, 2)))
    d3 = dw("d3", pw("p1", d2), 1, (2, 1, 0, 2))
    return relu6(dw("d4", relu(pw("p2", d3)), 2, (0, 1, 1, 0)))


def reference_tiny(w: dict, x: np.ndarray) -> np.ndarray:
    dw = lambda name, v, s, pad: numpy_depthwise(v, w[f"{name}.weight"], w[f"{name}.bias"], s, pad)  # noqa: E731
    pw = lambda name, v: numpy_pointwise(v, w[f"{name}.weight"], w[f"{name}.bias"])  # noqa: E731
    t2 = dw("t2", relu6(dw("t1", x, 1, (1, 1, 1, 1))), 1, (2, 2, 2, 2))
    t4 = relu(dw("t4", pw("t3", t2), 2, (1, 1, 1, 1)))
    return dw("t7", relu6(dw("t6", pw("t5", t4), 2, (2, 2, 2, 1))), 1, (1, 1, 1, 1))


CASES = {"depthwise_convs": (reference_convs, ("d1", "d2", "d3", "d4"), (13, 23, 29), (16, 5, 6)),
         "depthwise_tiny": (reference_tiny, ("t1", "t2", "t4", "t6", "t7"), (3, 2, 3), (13, 1, 1))}


@pytest.mark.parametrize("target", ["armv7", "aarch64"])  # vmla on armv7, fused multiply-add on AArch64
def test_depthwise_matches_numpy_in_odd_shapes(tmp_path, target):
    for name, (reference, layers, in_shape, out_shape) in CASES.items():
        model = ROOT / f"tests/models/{name}.yaml"
        rng = np.random.default_rng(23)
        arrays = {p.name: rng.normal(0, 0.5, p.shape).astype(np.float32) for p in load_yaml_model(model).params}
        np.savez(tmp_path / f"{name}.npz", **arrays)
        tuning = tmp_path / f"{name}.yaml"
        tuning.write_text("conv_method:\n" + "".join(f"  {n}: dw_nhwc\n" for n in layers))
        binary = build(model, tmp_path / "b", tmp_path / f"{name}.npz", "layout=nhwc", f"tuning={tuning}",
                       target=target)
        source = binary.with_suffix(".cpp").read_text()
        assert source.count("engine::DepthwiseConvolution ") == len(layers)
        assert "NEDepthwiseConvolutionLayer" not in source
        x = np.random.default_rng(29).normal(0, 1, in_shape).astype(np.float32)
        expected = reference(arrays, x)
        assert expected.shape == out_shape and np.abs(expected).max() > 1.0  # a result worth comparing
        for threads in ("1", "3"):  # output rows split among threads
            ours, _ = infer(binary, x, tmp_path, "--threads", threads, target=target)
            np.testing.assert_allclose(ours.reshape(out_shape), expected, rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("layer, message", [
    ("dw", "'dw_nhwc' needs a depthwise convolution with one filter per channel"),  # depth multiplier 2
    ("expand", "'dw_nhwc' needs a depthwise convolution with one filter per channel"),  # a dense 1x1 convolution
])
def test_depthwise_refuses_what_it_cannot_run(tmp_path, layer, message):
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text(f"conv_method:\n  {layer}: dw_nhwc\n")
    proc = scons("target=armv7", f"model={ROOT / 'tests/models/tiny_mobile.yaml'}", f"build_dir={tmp_path}",
                 f"tuning={tuning}", check=False)
    assert proc.returncode != 0 and message in proc.stderr and "tuning.yaml" in proc.stderr
