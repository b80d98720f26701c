"""Real-photo inputs for 8-bit accuracy checks, from scikit-image's bundled photos: a test set (>= 50 inputs from
colour photos, with crops and flips) and a separate calibration set made from *other* photos, so that no test
input was seen while choosing the quantization ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TEST_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "stereo_motorcycle",
               "colorwheel")
CALIBRATION_PHOTOS = ("immunohistochemistry", "camera", "coins", "moon", "clock", "cell", "gravel", "brick",
                      "sklearn:china.jpg", "sklearn:flower.jpg")


def _photo(name: str) -> Image.Image:
    import skimage.data

    if name.startswith("sklearn:"):  # scikit-learn's two bundled colour photos
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(name.split(":", 1)[1])).convert("RGB")
    pixels = getattr(skimage.data, name)()
    pixels = pixels[0] if isinstance(pixels, tuple) else pixels  # stereo_motorcycle: (left, right, disparity)
    return Image.fromarray(pixels).convert("RGB")


def _variants(image: Image.Image, count: int) -> list[Image.Image]:
    """The photo, its mirror image, and crops (corners, centre) with and without mirroring."""
    w, h = image.size

    def crop(fx: float, fy: float, size: float) -> Image.Image:
        cw, ch = int(w * size), int(h * size)
        left, top = int((w - cw) * fx), int((h - ch) * fy)
        return image.crop((left, top, left + cw, top + ch))

    flip = Image.Transpose.FLIP_LEFT_RIGHT
    all_variants = [image, image.transpose(flip), crop(0, 0, 0.75), crop(1, 1, 0.75), crop(0.5, 0.5, 0.6),
                    crop(0.5, 0.5, 0.6).transpose(flip), crop(1, 0, 0.7).transpose(flip)]
    return all_variants[:count]


def write_photo_set(directory: Path, kind: str) -> list[Path]:
    """Writes the test set (8 photos x 7 variants = 56) or the calibration set (10 other photos x 3 = 30) as PNG
    files; returns their paths in order."""
    names, count = (TEST_PHOTOS, 7) if kind == "test" else (CALIBRATION_PHOTOS, 3)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        for i, variant in enumerate(_variants(_photo(name), count)):
            path = directory / f"{name.replace('sklearn:', '').split('.')[0]}-{i}.png"
            if not path.exists():
                partial = path.with_name(path.name + ".partial.png")
                variant.save(partial)
                partial.replace(path)
            paths.append(path)
    return paths


def photo_tensors(model, paths: list[Path]) -> np.ndarray:
    """The engine inputs of photos, preprocessed as the model's YAML declares."""
    from neoncc.frontend.yaml_model import load_yaml_model
    from neoncc.tools.preprocess import preprocess

    graph = load_yaml_model(model)
    out = []
    for path in paths:
        with Image.open(path) as image:
            out.append(preprocess(image, graph.meta["preprocess"], graph.input_shape))
    return np.stack(out).astype(np.float32)
