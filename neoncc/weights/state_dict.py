"""A PyTorch state_dict (.pth) whose keys are the model's layer names -> the .npz the build takes.

Batch-norm bookkeeping (`num_batches_tracked`) is dropped; everything else must match the model exactly, so a
checkpoint of another architecture is refused by name and shape.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

from neoncc.errors import UserError
from neoncc.ir.graph import Graph
from neoncc.weights.pack import check_arrays


def load_state_dict(graph: Graph, path: Path) -> dict[str, np.ndarray]:
    return check_arrays(graph, read_state_dict(path), path)


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .pth state_dict (or of a checkpoint's `state_dict` entry) as NumPy arrays by key."""
    import torch  # only reading checkpoints needs PyTorch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(f"{path}: not a readable PyTorch checkpoint: {err}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path}: holds a {type(state).__name__}, not a state_dict")
    return {key: value.detach().cpu().numpy() for key, value in state.items()
            if hasattr(value, "detach") and not key.endswith("num_batches_tracked")}


def write_npz(weights: dict[str, np.ndarray], out: Path) -> None:
    out = Path(out)
    partial = out.with_name(out.name + ".partial.npz")
    np.savez(partial, **weights)
    partial.replace(out)
