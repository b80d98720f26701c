"""A folder of .npy files as ACL's graph examples read them (examples/graph_squeezenet.cpp: conv1_w.npy,
fire2_squeeze1x1_b.npy, ..., conv10_w.npy; what ACL's scripts/caffe_data_extractor.py writes from a Caffe model)
-> the weights of a model description the user already has.

The files hold weights only, so the structure comes from the YAML; each parameter `<layer>.weight` /
`<layer>.bias` is the file `<layer with . as _>_w.npy` / `_b.npy`, weights in OIHW as ACL's NCHW layout stores
them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from neoncc.errors import UserError
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.ir.graph import Graph

SUFFIX = {"weight": "w", "bias": "b"}


def npy_name(param: str) -> str:
    """`fire2.squeeze1x1.weight` -> `fire2_squeeze1x1_w.npy`."""
    layer, _, kind = param.rpartition(".")
    return f"{layer.replace('.', '_')}_{SUFFIX[kind]}.npy"


def load_npy_folder(folder: Path, model: Path) -> tuple[Graph, dict[str, np.ndarray]]:
    folder, graph = Path(folder), load_yaml_model(model)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    other = [p.name for p in graph.params if p.name.rpartition(".")[2] not in SUFFIX]
    if other:
        raise UserError(f"{model}: needs {', '.join(other[:4])}, which ACL's .npy naming (weights _w, biases _b) "
                        "does not cover")
    files = {p.name: folder / npy_name(p.name) for p in graph.params}
    missing = [path.name for path in files.values() if not path.is_file()]
    if missing:
        raise UserError(f"{folder}: missing {len(missing)} file(s) that {graph.name} needs: {', '.join(missing[:6])}"
                        + (" ..." if len(missing) > 6 else ""))
    shapes = {p.name: tuple(p.shape) for p in graph.params}
    weights = {}
    for name, path in files.items():
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: not a readable .npy file: {err}") from None
        weights[name] = _shaped(array, shapes[name], path, f"{graph.name}'s {name}")
    unused = sorted({p.name for p in folder.glob("*.npy")} - {p.name for p in files.values()})
    if unused:
        print(f"note: {folder}: {len(unused)} file(s) not used by {graph.name}: {', '.join(unused[:6])}"
              + (" ..." if len(unused) > 6 else ""), file=sys.stderr)
    return graph, weights


def _shaped(array: np.ndarray, shape: tuple, path: Path, what: str) -> np.ndarray:
    """The array in the model's shape. Caffe's older blobs are 4-D even for biases (1 x 1 x 1 x N), and ACL's
    extractor saves them as they are: leading 1s are dropped; any other difference is refused, naming the file."""
    if array.shape != shape and _without_leading_ones(array.shape) == _without_leading_ones(shape):
        array = array.reshape(shape)
    if array.shape != shape:
        raise UserError(f"{path}: shape {list(array.shape)}; {what} is {list(shape)}")
    if not np.issubdtype(array.dtype, np.floating):
        raise UserError(f"{path}: dtype {array.dtype}; expected float32")
    return array


def _without_leading_ones(shape: tuple) -> tuple:
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape
