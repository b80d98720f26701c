"""Writer of the engine's weight file; the layout is documented in runtime/weight_file.h, whose reader checks it."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

MAGIC = b"NCCWGHTS"
VERSION = 1


def encode(tensors: list[tuple[str, np.ndarray]]) -> bytes:
    header = [MAGIC, struct.pack("<II", VERSION, len(tensors))]
    for name, array in tensors:
        encoded = name.encode()
        header.append(struct.pack(f"<I{len(encoded)}sI{array.ndim}I", len(encoded), encoded, array.ndim,
                                  *array.shape))
    body = b"".join(header) + b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for _, a in tensors)
    return body + struct.pack("<I", zlib.crc32(body))


def write(path: Path, tensors: list[tuple[str, np.ndarray]]) -> None:
    """Written under a temporary name and renamed: an interrupted build never leaves half a weight file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(encode(tensors))
    partial.replace(path)
