"""Each graph pass on its own, and a network that takes every pass and template branch, against PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from conftest import ROOT, build, infer
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.passes import concat_in_place, fuse_activation, global_pooling, optimize, remove_dropout

TINY = ROOT / "tests/models/tiny_passes.yaml"
SQUEEZENET = ROOT / "configs/models/squeezenet_v1_1.yaml"


def ops(graph):
    return [(n.name, n.op) for n in graph.nodes]


def test_fuse_activation_folds_every_squeezenet_relu():
    graph = fuse_activation.run(load_yaml_model(SQUEEZENET))
    assert not [n for n in graph.nodes if n.op == "relu"]
    assert all(n.attrs.get("activation") == "relu" for n in graph.nodes if n.op == "conv")
    assert graph.node("pool1").inputs == ["conv1"]


def test_fuse_activation_keeps_a_relu_after_pooling():
    graph = fuse_activation.run(load_yaml_model(TINY))
    assert ("r1", "relu") not in ops(graph) and graph.node("c1").attrs["activation"] == "relu"
    assert ("a1", "relu") in ops(graph)


def test_remove_dropout_drops_plain_dropout():
    graph = remove_dropout.run(load_yaml_model(SQUEEZENET))
    assert "dropout" not in {n.op for n in graph.nodes}
    assert graph.node("conv10").inputs == ["fire9"] and "input_scale" not in graph.node("conv10").attrs


def test_remove_dropout_attenuation_folds_into_convolutions_or_stays_as_scale():
    graph = remove_dropout.run(load_yaml_model(TINY))
    assert graph.node("c3").attrs["input_scale"] == 0.7 and graph.node("c3").inputs == ["cat"]
    assert graph.node("d1").op == "scale" and graph.node("d1").attrs["factor"] == 0.5


def test_global_pooling_recognises_a_whole_input_window():
    graph = global_pooling.run(load_yaml_model(TINY))
    assert graph.node("gp").op == "global_avgpool" and graph.node("ap").op == "avgpool"


def test_concat_in_place_for_fire_modules_only():
    graph = concat_in_place.run(fuse_activation.run(load_yaml_model(SQUEEZENET)))
    fire2 = graph.node("fire2")
    assert fire2.attrs["in_place"]
    assert graph.node("fire2.expand1x1").attrs["write_into"] == {"tensor": "fire2", "channel": 0}
    assert graph.node("fire2.expand3x3").attrs["write_into"] == {"tensor": "fire2", "channel": 64}
    tiny = concat_in_place.run(optimize(load_yaml_model(TINY)))
    assert "in_place" not in tiny.node("cat").attrs  # one input is a scale node, not a convolution


def reference(weights: dict, x: torch.Tensor) -> torch.Tensor:
    """tiny_passes.yaml written by hand in PyTorch."""
    w = {k: torch.from_numpy(v) for k, v in weights.items()}
    x = F.relu(F.conv2d(F.pad(x, (2, 2, 1, 1)), w["c1.weight"], w["c1.bias"], stride=(1, 2)))
    x = F.relu(F.max_pool2d(x, 3, 2, ceil_mode=True))
    x = x * 0.5
    x = torch.cat([F.relu(F.conv2d(x, w["c2.weight"], w["c2.bias"])), x], dim=1)
    x = F.relu(F.conv2d(x * 0.7, w["c3.weight"], w["c3.bias"], padding=1))
    x = F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=True)
    x = F.avg_pool2d(x, (5, 3))
    return F.softmax(x.flatten(1), dim=1)


def test_tiny_network_matches_pytorch(tmp_path):
    rng = np.random.default_rng(3)
    graph = load_yaml_model(TINY)
    weights = {p.name: rng.normal(0, 0.3, p.shape).astype(np.float32) for p in graph.params}
    np.savez(tmp_path / "tiny.npz", **weights)
    binary = build(TINY, tmp_path / "build", tmp_path / "tiny.npz")
    source = binary.with_suffix(".cpp").read_text()
    assert "NEConcatenateLayer" in source and "ActivationFunction::LINEAR, 0.5f" in source
    assert "PoolingLayerInfo(PoolingType::AVG, DataLayout::NCHW)" in source
    assert "DimensionRoundingType::CEIL" in source and "PadStrideInfo(2U, 1U, 2U, 2U, 1U, 1U" in source
    x = rng.normal(0, 2, (1, 3, 20, 24)).astype(np.float32)
    probabilities, _ = infer(binary, x[0], tmp_path)
    expected = reference(weights, torch.from_numpy(x))[0].numpy()
    assert expected.max() < 0.9
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)
