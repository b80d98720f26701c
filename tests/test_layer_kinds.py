"""Layer kinds beyond SqueezeNet (depthwise, batch norm folding, ReLU6, add, fully connected, same padding)
in a small network built and run under qemu-arm, against the same network written by hand in PyTorch."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from conftest import ROOT, build, infer
from neoncc.errors import UserError
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.passes import optimize
from neoncc.weights.pack import random_weights

TINY = ROOT / "tests/models/tiny_mobile.yaml"


def reference(w: dict, x: torch.Tensor) -> torch.Tensor:
    w = {k: torch.from_numpy(v) for k, v in w.items()}

    def bn(x, name):
        return F.batch_norm(x, w[f"{name}.running_mean"], w[f"{name}.running_var"], w[f"{name}.weight"],
                            w[f"{name}.bias"], training=False, eps=1e-3)

    x = F.relu6(bn(F.conv2d(F.pad(x, (0, 1, 0, 1)), w["stem.weight"], stride=2), "stem_bn"))
    x = F.relu6(bn(F.conv2d(x, w["expand.weight"]), "expand_bn"))
    x = F.relu6(bn(F.conv2d(F.pad(x, (1, 2, 1, 2)), w["dw.weight"], stride=2, groups=16), "dw_bn"))
    x = bn(F.conv2d(x, w["project.weight"]), "project_bn")
    x = x + F.conv2d(x, w["dw2.weight"], w["dw2.bias"], padding=1, groups=8)
    x = F.relu6(F.conv2d(x, w["head.weight"], w["head.bias"]))
    x = F.adaptive_avg_pool2d(x, 1).flatten(1)
    return F.softmax(F.linear(x, w["fc.weight"], w["fc.bias"]), dim=1)


def test_passes_fold_batchnorm_and_fuse_relu6():
    graph = optimize(load_yaml_model(TINY))
    assert {n.op for n in graph.nodes} == {"conv", "add", "global_avgpool", "fc", "softmax"}
    assert "batch norm folded" in graph.node("dw").attrs["folded"] and "dw_bn" not in [n.name for n in graph.nodes]
    assert graph.node("dw").attrs["activation"] == "relu6" and graph.node("dw").attrs["pad"] == [1, 2, 1, 2]
    assert graph.node("res").inputs == ["project", "dw2"]


def test_tiny_mobile_matches_pytorch(tmp_path):
    graph = load_yaml_model(TINY)
    weights = random_weights(graph, seed=5)
    weights["fc.weight"] *= 4  # a softmax that is neither flat nor one-hot
    np.savez(tmp_path / "w.npz", **weights)
    binary = build(TINY, tmp_path / "build", tmp_path / "w.npz")
    source = binary.with_suffix(".cpp").read_text()
    for function in ("NEDepthwiseConvolutionLayer", "NEArithmeticAddition", "NEFullyConnectedLayer",
                     "BOUNDED_RELU, 6.f"):
        assert function in source
    assert not re.search(r"NE(Reshape|BatchNormalization)Layer \w+;", source)  # folded, flat: declared nowhere
    x = np.random.default_rng(2).normal(0, 1, (1, 3, 24, 20)).astype(np.float32)
    probabilities, _ = infer(binary, x[0], tmp_path)
    expected = reference(weights, torch.from_numpy(x))[0].numpy()
    assert 0.15 < expected.max() < 0.9
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("layer, message", [
    ("{name: g, type: conv, filters: 8, kernel: 1, groups: 2}", "groups=2 with 8 input channels"),
    ("{name: s, type: slice, start: 4, end: 12}", r"channels \[4, 12\) are not within the input's 8"),
])
def test_unsupported_constructs_are_refused_with_the_layer_name(tmp_path, layer, message):
    path = tmp_path / "m.yaml"
    path.write_text("name: m\ninput: {shape: [8, 8, 8]}\nlayers:\n"
                    "  - {name: c, type: conv, filters: 8, kernel: 1}\n  - " + layer + "\n")
    with pytest.raises(UserError, match=message):
        optimize(load_yaml_model(path))


def test_depthwise_after_a_convolution_in_the_default_layout():
    """MnasNet's 1x1 convolution -> 5x5 stride-2 depthwise, built as a user would (layout=auto) and checked by
    `neoncc validate` against the PyTorch reference under qemu-arm."""
    import json
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "neoncc", "validate", str(ROOT / "tests/models/pointwise_depthwise.yaml"),
                           "--random", "2", "--json", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["failures"] == [] and report["max_abs_error"] < 1e-5
