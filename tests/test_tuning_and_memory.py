"""Per-layer convolution methods from a tuning file, and activations sharing one pool by lifetime."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import ROOT, build, infer, scons
from neoncc.frontend.yaml_model import load_yaml_model

TINY = ROOT / "tests/models/tiny_passes.yaml"


def test_tuning_file_picks_the_acl_function_per_layer(tmp_path):
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text("conv_method:\n  c2: direct\n  c3: winograd\n")
    scons("target=armv7", f"model={TINY}", f"build_dir={tmp_path / 'tuned'}", f"tuning={tuning}")
    source = (tmp_path / "tuned/armv7/tiny_passes/tiny_passes.cpp").read_text()
    assert "NEDirectConvolutionLayer c2_{ scratch_memory_ };" in source
    assert "NEWinogradConvolutionLayer c3_{ scratch_memory_ };" in source
    assert "NEConvolutionLayer c1_{ scratch_memory_ };" in source  # not named: ACL's own choice


@pytest.mark.parametrize("text, message", [
    ("conv_method:\n  c9: direct\n", "conv_method.c9: tiny_passes has no convolution named 'c9'"),
    ("conv_method:\n  c2: fastest\n", "conv_method.c2: 'fastest' is not one of auto, gemm, winograd, direct"),
])
def test_bad_tuning_file_refused(tmp_path, text, message):
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text(text)
    proc = scons("target=armv7", f"model={TINY}", f"build_dir={tmp_path}", f"tuning={tuning}", check=False)
    assert proc.returncode != 0 and message in proc.stderr and "tuning.yaml" in proc.stderr


@pytest.mark.parametrize("model, largest_live_set", [
    ("squeezenet_v1_0", 4 * (96 * 111 * 111 + 96 * 55 * 55)),  # conv1's output while pool1 reads it
    ("squeezenet_v1_1", 4 * (64 * 113 * 113 + 64 * 56 * 56)),
])
def test_activations_share_an_arena_by_lifetime(tmp_path, model, largest_live_set):
    binary = build(ROOT / f"configs/models/{model}.yaml", tmp_path)
    source = binary.with_suffix(".cpp").read_text()
    placed = re.findall(r'activations_\.add\((\w+), "\w+", (\d+), (\d+)\);', source)
    assert placed and not {"data_out_", "prob_out_"} & {var for var, _, _ in placed}  # the caller's, outside
    assert all(int(first) <= int(last) for _, first, last in placed)
    graph = load_yaml_model(ROOT / f"configs/models/{model}.yaml")
    every_activation = sum(4 * int(np.prod(n.shape)) for n in graph.nodes if n.op not in ("relu", "dropout"))
    _, report = infer(binary, np.zeros((3, 227, 227), np.float32), tmp_path)
    assert largest_live_set <= report["activation_pool_bytes"] <= 1.3 * largest_live_set
    assert report["activation_pool_bytes"] < every_activation / 2


def test_pointwise_matrix_product_matches_pytorch_with_views_and_copies(tmp_path):
    """c2 reads a pooled (padded) tensor and writes into a copying concat: the matrices are private copies there;
    the other 1x1 layers of SqueezeNet take the view path (tests/test_squeezenet_engine.py covers those)."""
    from test_passes import reference
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text("conv_method:\n  c2: pointwise\n")
    rng = np.random.default_rng(4)
    graph = load_yaml_model(TINY)
    weights = {p.name: rng.normal(0, 0.3, p.shape).astype(np.float32) for p in graph.params}
    np.savez(tmp_path / "w.npz", **weights)
    scons("target=armv7", f"model={TINY}", f"build_dir={tmp_path / 'b'}", f"tuning={tuning}",
          f"weights={tmp_path / 'w.npz'}")
    binary = tmp_path / "b/armv7/tiny_passes/tiny_passes"
    assert "engine::PointwiseConvolution c2_{ scratch_memory_ };" in binary.with_suffix(".cpp").read_text()
    x = rng.normal(0, 2, (1, 3, 20, 24)).astype(np.float32)
    import torch
    probabilities, _ = infer(binary, x[0], tmp_path, "--runs", "2")
    np.testing.assert_allclose(probabilities, reference(weights, torch.from_numpy(x))[0].numpy(), rtol=0, atol=1e-5)


def test_pointwise_refused_where_it_cannot_apply(tmp_path):
    tuning = tmp_path / "tuning.yaml"
    tuning.write_text("conv_method:\n  c3: pointwise\n")
    proc = scons("target=armv7", f"model={TINY}", f"build_dir={tmp_path}", f"tuning={tuning}", check=False)
    assert proc.returncode != 0 and "'pointwise' needs a 1x1 kernel, stride 1, no padding" in proc.stderr
