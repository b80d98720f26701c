"""Photo -> input tensor, against numpy arithmetic written here from the YAML's declared preprocessing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from neoncc.errors import UserError
from neoncc.tools.preprocess import image_to_tensor

V11 = ROOT / "configs/models/squeezenet_v1_1.yaml"


def model_without_resize(tmp_path):
    text = V11.read_text().replace("  resize: 256", "  # no resize")
    path = tmp_path / "noresize.yaml"
    path.write_text(text)
    return path


def test_crop_channel_order_and_mean(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (240, 250, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    tensor = image_to_tensor(model_without_resize(tmp_path), tmp_path / "photo.png")
    top, left = (240 - 227) // 2, (250 - 227) // 2
    crop = rgb[top:top + 227, left:left + 227].astype(np.float32)
    expected = np.stack([crop[..., 2] - 104, crop[..., 1] - 117, crop[..., 0] - 123])  # BGR, Caffe means
    np.testing.assert_array_equal(tensor, expected)


def test_resize_keeps_aspect_and_a_flat_colour_stays_flat(tmp_path):
    Image.new("RGB", (640, 480), (200, 100, 50)).save(tmp_path / "flat.jpg", quality=100)
    tensor = image_to_tensor(V11, tmp_path / "flat.jpg")
    assert tensor.shape == (3, 227, 227) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor.reshape(3, -1).mean(axis=1), [50 - 104, 100 - 117, 200 - 123], atol=1.0)


def test_command_line_writes_raw_float32(tmp_path):
    Image.new("RGB", (300, 300), (0, 0, 0)).save(tmp_path / "black.png")
    subprocess.run([sys.executable, "-m", "neoncc", "preprocess", str(tmp_path / "black.png"), "--model", str(V11),
                    "-o", str(tmp_path / "in.f32")], cwd=ROOT, check=True, capture_output=True)
    values = np.fromfile(tmp_path / "in.f32", "<f4").reshape(3, 227, 227)
    np.testing.assert_array_equal(values[:, 0, 0], [-104, -117, -123])


def test_not_an_image(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="notes.txt: not a readable image"):
        image_to_tensor(V11, tmp_path / "notes.txt")
