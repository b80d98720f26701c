"""The generated SqueezeNet engines, cross-built and run under qemu-arm, against PyTorch with the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ROOT, build, infer
from torch_reference import make_model, state_npz


# Every layout gives the same engine output: the default (auto: per layer, from the tuning file), and each forced.
@pytest.fixture(scope="module", params=[("1_0", "auto"), ("1_1", "auto"), ("1_0", "nchw"), ("1_1", "nchw"),
                                        ("1_0", "nhwc"), ("1_1", "nhwc")], ids=lambda p: "-".join(p))
def engine_and_reference(request, tmp_path_factory, sample_input):
    version, layout = request.param
    work = tmp_path_factory.mktemp(f"squeezenet_v{version}_{layout}")
    model = make_model(version, seed=11, sample=torch.from_numpy(sample_input))
    state_npz(model, work / "weights.npz")
    binary = build(ROOT / f"configs/models/squeezenet_v{version}.yaml", work / "build", work / "weights.npz",
                   f"layout={layout}")
    return binary, model, work


def test_matches_pytorch(engine_and_reference, sample_input):
    binary, model, work = engine_and_reference
    probabilities, report = infer(binary, sample_input[0], work, "--threads", "2")
    with torch.no_grad():
        expected = model(torch.from_numpy(sample_input))[0].numpy()
    assert expected.max() < 0.5, "reference softmax is nearly one-hot: the comparison would be too weak"
    assert probabilities.shape == (1000,)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)
    assert int(np.argmax(probabilities)) == int(np.argmax(expected))
    assert report["top5"][0][0] == int(np.argmax(expected))
    assert [c for c, _ in report["top5"]] == list(np.argsort(-expected)[:5])


def test_second_input_and_repeated_runs(engine_and_reference):
    """A photo-like input (smooth, positive-biased) and several timed runs give the same answer every run."""
    binary, model, work = engine_and_reference
    y, x = np.mgrid[0:227, 0:227].astype(np.float32)
    tensor = np.stack([np.sin(x / 17) * 80, np.cos(y / 23) * 70, (x - y) / 3]).astype(np.float32)
    probabilities, report = infer(binary, tensor, work, "--runs", "3", "--warmup", "1", "--threads", "1")
    with torch.no_grad():
        expected = model(torch.from_numpy(tensor[None]))[0].numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)
    assert len(report["times_ms"]) == 3 and report["threads"] == 1
    assert {layer["group"] for layer in report["layers"]} == {"conv+relu+concat", "pool+softmax"}
