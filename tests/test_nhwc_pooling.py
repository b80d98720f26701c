"""Our NHWC pooling kernels (engine::MaxPoolingNhwc's and engine::QuantizedMaxPoolingNhwc's 3x3 stride-2 path,
engine::GlobalAveragePoolingNhwc), cross-built and run under qemu-arm in odd shapes, against pooling written here with
plain numpy; refused by name where they cannot run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, build, infer
from neoncc.frontend.yaml_model import load_yaml_model


def numpy_max_pool(x: np.ndarray, k: int, s: int, pad: int, out_hw) -> np.ndarray:
    """The maximum of each k x k window clipped to the input (padding never wins)."""
    c, h, w = x.shape
    out = np.empty((c, *out_hw), np.float32)
    for oy in range(out_hw[0]):
        for ox in range(out_hw[1]):
            y0, x0 = oy * s - pad, ox * s - pad
            out[:, oy, ox] = x[:, max(y0, 0):min(y0 + k, h), max(x0, 0):min(x0 + k, w)].max(axis=(1, 2))
    return out


@pytest.mark.parametrize("threads", ["1", "3"])
def test_max_pooling_3x3_stride_2_matches_numpy(tmp_path, threads):
    model = ROOT / "tests/models/nhwc_pools.yaml"
    shapes = {n.name: n.shape for n in load_yaml_model(model).nodes}
    assert shapes == {"p1": (13, 10, 9), "p2": (13, 5, 5)}  # p1's last column window is clipped (ceil)
    binary = build(model, tmp_path / "b", None, "layout=nhwc")
    assert binary.with_suffix(".cpp").read_text().count("engine::MaxPoolingNhwc ") == 2
    x = np.random.default_rng(12).normal(0, 1, (13, 21, 18)).astype(np.float32)
    ours, _ = infer(binary, x, tmp_path, "--threads", threads)
    p1 = numpy_max_pool(x, 3, 2, 0, (10, 9))
    p2 = numpy_max_pool(p1, 3, 2, 1, (5, 5))
    np.testing.assert_array_equal(ours.reshape(13, 5, 5), p2)


@pytest.mark.parametrize("channels", [53, 3])
def test_8_bit_max_pooling_and_input_permute_match_numpy(tmp_path, channels):
    """The same pools in 8 bits (input scale and offset given with int8_scales; the pools keep them): the input's
    codes go to NHWC through engine::PermuteToNhwc (3 channels: 8 pixels per vst3.8; 53: one value at a time), then
    through engine::QuantizedMaxPoolingNhwc (53 channels: a block of 32 codes in the assembly loop, one of 16 in the
    intrinsics loop, 5 left), exactly the maximum of the codes numpy takes on its own quantization of the input."""
    model = tmp_path / "pools.yaml"
    model.write_text((ROOT / "tests/models/nhwc_pools.yaml").read_text().replace("[13, 21, 18]", f"[{channels}, 21, 18]"))
    scale, offset = 0.03, 120
    (tmp_path / "scales.json").write_text(json.dumps({"tensors": {"image": [scale, offset]}}))
    binary = build(model, tmp_path / "b", None, "layout=nhwc", "precision=int8", f"int8_scales={tmp_path / 'scales.json'}")
    source = binary.with_suffix(".cpp").read_text()
    assert source.count("engine::QuantizedMaxPoolingNhwc ") == 2 and source.count("engine::PermuteToNhwc ") == 1
    x = np.random.default_rng(14).normal(0, 1.5, (channels, 21, 18)).astype(np.float32)
    ours, _ = infer(binary, x, tmp_path)
    q = np.clip(np.floor(x.astype(np.float64) / scale + offset + 0.5), 0, 255)
    assert (q == 0).any() and (q == 255).any()
    p2 = numpy_max_pool(numpy_max_pool(q, 3, 2, 0, (10, 9)), 3, 2, 1, (5, 5))
    np.testing.assert_array_equal(ours.reshape(channels, 5, 5), ((p2 - offset) * np.float32(scale)).astype(np.float32))


@pytest.mark.parametrize("threads", ["1", "3"])
def test_global_average_pooling_nhwc_matches_numpy(tmp_path, threads):
    model = ROOT / "tests/models/nhwc_global_pool.yaml"
    binary = build(model, tmp_path / "b", None, "layout=nhwc")
    source = binary.with_suffix(".cpp").read_text()
    assert "engine::GlobalAveragePoolingNhwc " in source and "NEPoolingLayer" not in source
    x = np.random.default_rng(13).normal(0, 1, (37, 9, 7)).astype(np.float32)
    ours, _ = infer(binary, x, tmp_path, "--threads", threads)
    pooled = numpy_max_pool(x, 3, 1, 0, (7, 5)).astype(np.float64)
    np.testing.assert_allclose(ours, pooled.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_global_average_pooling_nchw_stays_acl(tmp_path):
    """In NCHW the layer keeps ACL's pooling: ours runs in NHWC only."""
    binary = build(ROOT / "tests/models/nhwc_global_pool.yaml", tmp_path / "b", None, "layout=nchw")
    source = binary.with_suffix(".cpp").read_text()
    assert "engine::GlobalAveragePoolingNhwc" not in source and "NEPoolingLayer" in source
