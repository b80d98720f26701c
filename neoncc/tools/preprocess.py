"""A photo (JPEG, PNG, ...) -> the engine's raw float32 NCHW input, with the preprocessing the model's YAML
declares: shorter side resized to `resize`, centre crop `crop`, channel order, then ((x - mean) / std) * scale
on the 0..255 scale (Caffe SqueezeNet: BGR, mean 104/117/123, no std)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from neoncc.errors import UserError
from neoncc.frontend.yaml_model import load_yaml_model


MAX_PIXELS = 64_000_000  # a 64-megapixel photo; more (or a header claiming more) is refused before decoding


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB. 16-bit greyscale (modes I;16*, I) is scaled from 0..65535 to 0..255, not clipped at 255."""
    if image.mode.startswith("I;16") or image.mode == "I":
        wide = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or wide.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(wide * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return image.convert("RGB")


def preprocess(image: Image.Image, spec: dict, input_shape: tuple[int, int, int]) -> np.ndarray:
    channels, height, width = input_shape
    w, h = image.size
    if w * h > MAX_PIXELS:
        raise UserError(f"image is {w}x{h} pixels, more than the {MAX_PIXELS:,} accepted")
    image = _to_rgb(image)
    if "resize" in spec:
        short = spec["resize"]
        w, h = image.size
        size = (short, round(h * short / w)) if w <= h else (round(w * short / h), short)
        if size[0] * size[1] > MAX_PIXELS:
            raise UserError(f"image is {w}x{h}: resizing its shorter side to {short} would make it "
                            f"{size[0]}x{size[1]}; its sides are too unequal")
        image = image.resize(size, Image.BILINEAR)
    crop = spec.get("crop", min(height, width))
    w, h = image.size
    if w < crop or h < crop:
        raise UserError(f"image is {w}x{h}, smaller than the {crop}x{crop} crop")
    left, top = (w - crop) // 2, (h - crop) // 2
    image = image.crop((left, top, left + crop, top + crop))
    if image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)
    if spec.get("channel_order", "RGB") == "BGR":
        pixels = pixels[:, :, ::-1]
    pixels = (pixels - np.float32(spec.get("mean", [0, 0, 0]))) / np.float32(spec.get("std", [1, 1, 1]))
    pixels = pixels * np.float32(spec.get("scale", 1.0))
    tensor = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype="<f4")
    assert tensor.shape == (channels, height, width)
    return tensor


def random_inputs(graph, count: int, seed: int) -> np.ndarray:
    """Random photos (noise images through the model's own preprocessing), or normal noise for models that
    declare no preprocessing: inputs on the scale the engine meets in use."""
    rng = np.random.default_rng(seed)
    spec = graph.meta["preprocess"]
    if not spec or graph.input_shape[0] != 3:
        return rng.normal(0, 1, (count, *graph.input_shape)).astype(np.float32)
    side = spec.get("resize", max(graph.input_shape[1:]))
    return np.stack([preprocess(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)), spec,
                                graph.input_shape) for _ in range(count)])


def image_to_tensor(model: str | Path, image_path: str | Path) -> np.ndarray:
    graph = load_yaml_model(model)
    try:
        with Image.open(image_path) as image:
            return preprocess(image, graph.meta["preprocess"], graph.input_shape)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UserError(f"{image_path}: refused: {err}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UserError(f"{image_path}: not a readable image: {err}") from None
    except UserError as err:
        raise UserError(f"{image_path}: {err}") from None


def write_tensor(tensor: np.ndarray, out: Path) -> None:
    """Raw little-endian float32, written under a temporary name and renamed: never half-written."""
    out = Path(out)
    partial = out.with_name(f"{out.name}.{os.getpid()}.partial")
    try:
        tensor.astype("<f4").tofile(partial)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
