"""Writer of the engine's weight file; the layout is documented in runtime/weight_file.h, whose reader checks it.

Version 2 stores an element type per tensor, so that 8-bit engines carry int8 weights and int32 biases."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

MAGIC = b"NCCWGHTS"
VERSION = 2
# Element type codes (runtime/weight_file.h: ElementType): float32, int8, int32, uint8; all little-endian.
DTYPES = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int32"): 2, np.dtype("uint8"): 3}


def encode(tensors: list[tuple[str, np.ndarray]]) -> bytes:
    header = [MAGIC, struct.pack("<II", VERSION, len(tensors))]
    for name, array in tensors:
        if array.dtype not in DTYPES:
            raise TypeError(f"{name}: no weight-file element type for {array.dtype}")
        encoded = name.encode()
        header.append(struct.pack(f"<I{len(encoded)}sI{array.ndim}II", len(encoded), encoded, array.ndim,
                                  *array.shape, DTYPES[array.dtype]))
    body = b"".join(header) + b"".join(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
                                       for _, a in tensors)
    return body + struct.pack("<I", zlib.crc32(body))


def write(path: Path, tensors: list[tuple[str, np.ndarray]]) -> None:
    """Written under a temporary name and renamed: an interrupted build never leaves half a weight file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(encode(tensors))
    partial.replace(path)
