"""A fire-module network trained here on scikit-learn's digits, imported from its PyTorch state_dict, run on
the emulated board on the whole held-out set in one engine call: the same accuracy and the same predictions as
PyTorch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from deploy.testing import deploy_json

MODEL = ROOT / "configs/models/digits_fire.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("digits")
    subprocess.run([sys.executable, "examples/digits/train.py", str(work)], cwd=ROOT, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "neoncc", "convert-weights", str(work / "digits_fire.pth"), "--model",
                    str(MODEL), "-o", str(work / "w.npz")], cwd=ROOT, check=True, capture_output=True)
    return work


def test_board_accuracy_and_predictions_equal_pytorch(trained, models_board):
    work = trained
    result = deploy_json("--board", str(models_board), "--model", str(MODEL), "--weights", str(work / "w.npz"),
                         "--input", str(work / "test.f32"), "--output", str(work / "out.f32"),
                         "--runs", "1", "--warmup", "0", timeout=900)
    labels = np.load(work / "test_labels.npy")
    expected = np.load(work / "torch_probabilities.npy")
    ours = np.fromfile(work / "out.f32", "<f4").reshape(len(labels), 10)
    assert result["batch"] == len(labels) and result["top1"] == ours.argmax(1).tolist()
    assert (expected.argmax(1) == labels).mean() > 0.85  # it did learn
    np.testing.assert_array_equal(ours.argmax(1), expected.argmax(1))
    assert (ours.argmax(1) == labels).mean() == (expected.argmax(1) == labels).mean()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)
