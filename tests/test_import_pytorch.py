"""PyTorch import: state_dicts in torchvision's SqueezeNet key layout, written here from tests/torch_reference.py's
model; the imported engine must compute what the torchvision-layout model computes (softmax of its logits).
The torchvision package itself is not used: its PyPI wheel for torch 2.13 (0.28.0) is a CUDA build whose
operators do not load with the CPU torch wheel pinned here, so tests/torchvision_layout.py reproduces its modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from import_helpers import assert_agrees, config_layers, engine_output, refused, run_import, yaml_layers
from torch_reference import make_model
from torchvision_layout import torchvision_model, torchvision_state_dict


@pytest.fixture(scope="module")
def sample_224() -> np.ndarray:
    """torchvision's input size, normalised like its preprocessing (about zero mean, unit spread)."""
    return np.random.default_rng(8).normal(0.0, 1.0, (1, 3, 224, 224)).astype(np.float32)


@pytest.fixture(scope="module")
def pytorch_v1_1(tmp_path_factory, sample_224):
    work = tmp_path_factory.mktemp("pytorch")
    reference = make_model("1_1", seed=41, sample=torch.from_numpy(sample_224))
    model = torchvision_model(reference, "1_1")
    with torch.no_grad():
        x = torch.from_numpy(sample_224)
        expected = torch.softmax(model(x), dim=1)[0].numpy()
        np.testing.assert_allclose(expected, reference(x)[0].numpy(), rtol=0, atol=1e-7)  # renaming is right
    torch.save(model.state_dict(), work / "squeezenet1_1.pth")
    yaml, npz = work / "pytorch_squeezenet_v1_1.yaml", work / "pytorch_squeezenet_v1_1.npz"
    run_import("pytorch", work / "squeezenet1_1.pth", "-o", yaml, "--weights-out", npz)
    return reference, expected, work, yaml, npz


def test_engine_matches_pytorch(pytorch_v1_1, tmp_path_factory, sample_224):
    _, expected, _, yaml, npz = pytorch_v1_1
    probabilities = engine_output(tmp_path_factory, yaml, npz, sample_224[0])
    assert_agrees(probabilities, expected, "pytorch v1.1")


def test_description_uses_the_release_names_and_torchvision_preprocessing(pytorch_v1_1):
    _, _, _, yaml, npz = pytorch_v1_1
    text = yaml.read_text()
    assert text.startswith("# Imported from PyTorch: ") and "torchvision SqueezeNet 1.1 state_dict" in text
    assert "input: {name: data, shape: [3, 224, 224]}" in text
    assert "preprocess: {resize: 256, crop: 224, channel_order: RGB, mean: [123.675, 116.28, 103.53]" in text
    assert yaml_layers(yaml) == config_layers("1_1")
    with np.load(npz) as weights:
        assert weights["fire9.squeeze1x1.weight"].shape == (64, 512, 1, 1)


def test_v1_0_and_wrapped_checkpoints(pytorch_v1_1, tmp_path, sample_224):
    """1.0 is told from 1.1 by its 7x7 first convolution; a DataParallel (`module.`) state_dict inside a
    checkpoint's `state_dict` entry imports the same."""
    reference = make_model("1_0", seed=42, sample=torch.from_numpy(sample_224))
    state = torchvision_state_dict(reference, "1_0")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ckpt.pth")
    run_import("pytorch", tmp_path / "ckpt.pth", "-o", tmp_path / "v10.yaml", "--weights-out", tmp_path / "v10.npz")
    assert yaml_layers(tmp_path / "v10.yaml") == config_layers("1_0")
    with np.load(tmp_path / "v10.npz") as weights:
        for key, value in reference.state_dict().items():
            np.testing.assert_array_equal(weights[key], value.numpy())


def test_refusals(pytorch_v1_1, tmp_path, capsys):
    reference = pytorch_v1_1[0]
    state = torchvision_state_dict(reference, "1_1")
    del state["classifier.1.bias"]
    torch.save(state, tmp_path / "partial.pth")
    state = torchvision_state_dict(reference, "1_1")
    state["classifier.4.weight"] = torch.zeros(1000, 1000)  # a layer torchvision's SqueezeNet does not have
    torch.save(state, tmp_path / "extra.pth")
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    outputs = ("-o", tmp_path / "m.yaml", "--weights-out", tmp_path / "m.npz")
    assert "partial.pth: not torchvision's SqueezeNet 1.1 layout: missing classifier.1.bias" in \
        refused(capsys, "pytorch", tmp_path / "partial.pth", *outputs)
    assert "extra.pth: not torchvision's SqueezeNet 1.1 layout: unexpected classifier.4.weight" in \
        refused(capsys, "pytorch", tmp_path / "extra.pth", *outputs)
    assert "other.pth: not a torchvision SqueezeNet state_dict: 'features.0.weight' is missing" in \
        refused(capsys, "pytorch", tmp_path / "other.pth", *outputs)
    assert "junk.pth: not a readable PyTorch checkpoint" in refused(capsys, "pytorch", tmp_path / "junk.pth", *outputs)
    assert not (tmp_path / "m.yaml").exists() and not (tmp_path / "m.npz").exists()
