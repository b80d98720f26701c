"""Our NHWC convolution kernels (engine::PackedGemmConvolution, engine::WinogradConvolution with F(6x6, 3x3) and
F(4x4, 3x3), engine::DirectConvolution3x3s2), cross-built and run
under qemu-arm / qemu-aarch64 in a network of odd shapes (tests/models/odd_convs.yaml), against convolutions written here with
plain numpy; and refused by name where they cannot run."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT, build, infer, scons
from neoncc.frontend.yaml_model import load_yaml_model

MODEL = ROOT / "tests/models/odd_convs.yaml"
CONVS = ("c1", "c2", "c3", "e1", "e3", "c4", "c5", "c6")
THREE_BY_THREE_STRIDE_1 = ("e3", "c4", "c5")


def numpy_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride=(1, 1), pad=(0, 0, 0, 0)) -> np.ndarray:
    """x: C x H x W, w: O x C x kh x kw, pad (top, bottom, left, right): a sum over the window, in float64."""
    top, bottom, left, right = pad
    x = np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right)))
    _, kh, kw = w.shape[1:]
    oh, ow = (x.shape[1] - kh) // stride[0] + 1, (x.shape[2] - kw) // stride[1] + 1
    out = np.zeros((w.shape[0], oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + stride[0] * (oh - 1) + 1:stride[0], j:j + stride[1] * (ow - 1) + 1:stride[1]]
            out += np.einsum("oc,chw->ohw", w[:, :, i, j].astype(np.float64), patch)
    return out + b[:, None, None]


def reference(w: dict, x: np.ndarray) -> np.ndarray:
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    conv = lambda name, v, **kw: numpy_conv(v, w[f"{name}.weight"], w[f"{name}.bias"], **kw)  # noqa: E731
    c1 = relu(conv("c1", x, stride=(2, 2), pad=(1, 2, 0, 1)))
    c2 = np.clip(conv("c2", c1), 0, 6)
    c3 = relu(conv("c3", c2))
    cat = np.concatenate([relu(conv("e1", c3)), relu(conv("e3", c3, pad=(1, 1, 1, 1)))])
    c5 = relu(conv("c5", conv("c4", cat), pad=(2, 0, 1, 1)))
    return conv("c6", c5.mean(axis=(1, 2), keepdims=True)).ravel()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    work = tmp_path_factory.mktemp("odd_convs")
    rng = np.random.default_rng(11)
    arrays = {p.name: rng.normal(0, 0.5, p.shape).astype(np.float32) for p in load_yaml_model(MODEL).params}
    np.savez(work / "w.npz", **arrays)
    return work, arrays


@pytest.mark.parametrize("methods", [
    {name: "packed_gemm" for name in CONVS},
    {name: "winograd63" if name in THREE_BY_THREE_STRIDE_1 else "packed_gemm" for name in CONVS},
    {name: "winograd43" if name in THREE_BY_THREE_STRIDE_1 else "packed_gemm" for name in CONVS},
], ids=["packed_gemm", "winograd63", "winograd43"])
@pytest.mark.parametrize("target", ["armv7", "aarch64"])  # the GEMM block in inline assembly of either
def test_kernels_match_numpy_in_odd_shapes(weights, methods, target):
    work, arrays = weights
    kind = "-".join(sorted(set(methods.values())))
    tuning = work / f"{kind}.yaml"
    tuning.write_text("conv_method:\n" + "".join(f"  {n}: {m}\n" for n, m in methods.items()))
    binary = build(MODEL, work / f"{kind}-{target}", work / "w.npz", "layout=nhwc", f"tuning={tuning}",
                   target=target)
    source = binary.with_suffix(".cpp").read_text()
    for name, method in methods.items():
        function = {"packed_gemm": "PackedGemmConvolution", "winograd63": "WinogradConvolution",
                    "winograd43": "WinogradConvolution43"}[method]
        assert f"engine::{function} {name}_{{ scratch_memory_ }};" in source
    x = np.random.default_rng(3).normal(0, 1, (5, 19, 23)).astype(np.float32)
    expected = reference(arrays, x)
    assert np.abs(expected).max() > 1.0  # a result worth comparing
    for threads in ("1", "3"):  # the work split among threads (panels, tiles, Winograd positions)
        ours, _ = infer(binary, x, work, "--runs", "2", "--threads", threads, target=target)
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layer, method, message", [
    ("dil", "packed_gemm", "'packed_gemm' needs groups 1 and no dilation"),
    ("c0", "winograd63", "'winograd63' needs a 3x3 kernel, stride 1, groups 1 and no dilation"),
    ("c0", "winograd43", "'winograd43' needs a 3x3 kernel, stride 1, groups 1 and no dilation"),
])
def test_refused_where_they_cannot_run(tmp_path, layer, method, message):
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text(f"conv_method:\n  {layer}: {method}\n")
    proc = scons("target=armv7", f"model={ROOT / 'tests/models/new_ops.yaml'}", f"build_dir={tmp_path}",
                 f"tuning={tuning}", check=False)
    assert proc.returncode != 0 and message in proc.stderr and "tuning.yaml" in proc.stderr


@pytest.mark.parametrize("target", ["armv7", "aarch64"])  # inline assembly on armv7, intrinsics on AArch64
def test_direct_3x3_stride_2_matches_numpy(tmp_path, target):
    """engine::DirectConvolution3x3s2 (3-channel images), writing channel ranges of a concat, against numpy."""
    model = ROOT / "tests/models/rgb_convs.yaml"
    rng = np.random.default_rng(17)
    arrays = {p.name: rng.normal(0, 0.5, p.shape).astype(np.float32) for p in load_yaml_model(model).params}
    np.savez(tmp_path / "w.npz", **arrays)
    tuning = tmp_path / "direct.yaml"
    tuning.write_text("conv_method:\n  a: direct3x3s2\n  b: direct3x3s2\n")
    binary = build(model, tmp_path / "b", tmp_path / "w.npz", "layout=nhwc", f"tuning={tuning}", target=target)
    source = binary.with_suffix(".cpp").read_text()
    assert source.count("engine::DirectConvolution3x3s2 ") == 2 and "NEConcatenateLayer" not in source
    x = np.random.default_rng(18).normal(0, 1, (3, 17, 23)).astype(np.float32)
    a = np.maximum(numpy_conv(x, arrays["a.weight"], arrays["a.bias"], stride=(2, 2), pad=(1, 2, 0, 1)), 0)
    b = np.clip(numpy_conv(x, arrays["b.weight"], arrays["b.bias"], stride=(2, 2), pad=(1, 1, 0, 1)), 0, 6)
    expected = np.concatenate([a, b])
    assert expected.shape == (29, 9, 11) and np.abs(expected).max() > 1.0
    for threads in ("1", "3"):
        ours, _ = infer(binary, x, tmp_path, "--threads", threads, target=target)
        np.testing.assert_allclose(ours.reshape(expected.shape), expected, rtol=1e-4, atol=1e-4)


def test_direct_3x3_stride_2_refuses_other_convolutions(tmp_path):
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text("conv_method:\n  c1: direct3x3s2\n")  # 5 input channels
    proc = scons("target=armv7", f"model={MODEL}", f"build_dir={tmp_path}", f"tuning={tuning}", check=False)
    assert proc.returncode != 0 and "'direct3x3s2' needs a 3x3 kernel, stride 2, 3 input channels" in proc.stderr
