"""The calibration set: a folder of photos (preprocessed as the model's YAML says) and/or raw .f32 input tensors
(one or more inputs back to back, like the engine's --input). Every file must be one of these, so that a typo'd
folder or a stray file is reported rather than silently calibrating on less than the user meant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from neoncc.errors import UserError
from neoncc.ir.graph import Graph
from neoncc.tools.preprocess import preprocess

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".tif", ".tiff", ".webp"}


def load_calibration(directory: str | Path, graph: Graph, field: str = "calibration") -> np.ndarray:
    """All calibration inputs of a folder as one (N, C, H, W) float32 array, in file-name order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{field}={directory}: no such directory (a folder of photos and/or .f32 input tensors)")
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise UserError(f"{field}={directory}: the folder is empty; put photos (.jpg, .png, ...) or .f32 input "
                        "tensors in it")
    size = int(np.prod(graph.input_shape))
    tensors = []
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".f32":
            data = np.fromfile(path, "<f4")
            if data.size == 0 or data.size % size:
                raise UserError(f"{field}={directory}: {path.name}: {data.size * 4} bytes; {graph.name} expects "
                                f"a multiple of {size * 4} (float32 tensors of shape {list(graph.input_shape)})")
            if not np.all(np.isfinite(data)):
                raise UserError(f"{field}={directory}: {path.name}: contains NaN or infinite values")
            tensors.append(data.reshape(-1, *graph.input_shape))
        elif suffix in IMAGE_SUFFIXES:
            if not graph.meta.get("preprocess"):
                raise UserError(f"{field}={directory}: {path.name}: {graph.name} declares no preprocessing, so "
                                "photos cannot become its inputs; give .f32 tensors")
            try:
                with Image.open(path) as image:
                    tensors.append(preprocess(image, graph.meta["preprocess"], graph.input_shape)[None])
            except (UnidentifiedImageError, OSError) as err:
                raise UserError(f"{field}={directory}: {path.name}: not a readable image: {err}") from None
            except UserError as err:
                raise UserError(f"{field}={directory}: {path.name}: {err}") from None
        else:
            raise UserError(f"{field}={directory}: {path.name}: neither a photo ({', '.join(sorted(IMAGE_SUFFIXES))})"
                            " nor a .f32 input tensor")
    return np.concatenate(tensors).astype(np.float32)
