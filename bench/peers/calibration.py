"""What the 8-bit peers (ncnn_int8, xnnpack_int8) calibrate with: the same inputs our int8 engine calibrates on
(bench/photos.py's calibration photos, 30 crops of 10 photos that are not test inputs, preprocessed as the model
says; seeded inputs on the model's scale for models that do not take colour photos, as our tests calibrate), and
the looser tolerance their outputs are checked to against our float32 engine."""

from __future__ import annotations

import numpy as np

from bench.peers import sysroot
from bench.peers.base import PeerError
from bench.peers.network import Network

PHOTOS = sysroot.CACHE / "calibration-photos"
SEEDED_INPUTS = 30   # seeded inputs for models that do not take colour photos
# Max |difference| to our float32 engine's probabilities an 8-bit peer's output may show (8-bit weights and
# activations: about 1 % of a probability); the float peers keep base.TOLERANCE.
INT8_TOLERANCE = 2e-2


def photo_model(network: Network) -> bool:
    graph = network.graph
    return bool(graph is not None and graph.meta.get("preprocess") and graph.input_shape[0] == 3)


def describe(network: Network) -> str:
    return "bench/photos.py calibration photos" if photo_model(network) else f"{SEEDED_INPUTS} seeded inputs"


def inputs(network: Network, peer: str) -> np.ndarray:
    """The calibration batch (N, C, H, W) float32 for the network's float graph."""
    from bench.photos import write_photo_set
    from neoncc.tools.preprocess import preprocess, random_inputs
    from PIL import Image

    graph = network.graph
    if graph is None:
        raise PeerError(f"{peer}: the network has no float graph to calibrate with")
    if not photo_model(network):
        return random_inputs(graph, SEEDED_INPUTS, 11)
    with sysroot.locked("calibration-photos"):
        paths = write_photo_set(PHOTOS, "calibration")
    batch = []
    for path in paths:
        with Image.open(path) as image:
            batch.append(preprocess(image, graph.meta["preprocess"], graph.input_shape))
    return np.stack(batch).astype(np.float32)
