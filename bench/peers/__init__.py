"""Peer engines: other inference engines running the same network, weights and input under the same emulator.

Each peer exports the YAML description + .npz weights into its own format, runs under the target's qemu-user
(armv7: qemu-arm -cpu cortex-a7; a peer lists the targets it exists for) with one thread, and is measured in guest instructions per inference (bench.insncount markers around the
inference call) and emulated wall time. Before its numbers mean anything its output must equal ours to 1e-4
(check_agreement).

    from bench import peers
    peers.setup(["tflite"])                                   # idempotent: debs, wheels, peer binaries
    peer = peers.prepare("tflite", "configs/models/squeezenet_v1_1.yaml", "W.npz", "work/tflite")
    result = peer.run("input.f32", runs=3)                    # PeerResult
    peers.check_agreement("tflite", result.probabilities, our_output)

    python3 -m bench.peers setup [NAME...]
    python3 -m bench.peers run --model M.yaml --weights W.npz --input IN.f32 [--reference OUT.f32] [--json]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.peers import acl_graph, base, calibration, ncnn, onnxruntime, opencv_dnn, plain_cpp, tflite_rt, xnnpack
from bench.peers.base import TOLERANCE, Peer, PeerError, PeerResult
from bench.peers.network import Network, load
from bench.peers.sysroot import Log, log_stderr

__all__ = ["PEERS", "TOLERANCE", "Peer", "PeerError", "PeerResult", "check_agreement", "prepare", "setup"]


@dataclass(frozen=True)
class PeerKind:
    name: str
    description: str
    setup: Callable[[Log], None]
    make: Callable[..., Peer]
    targets: tuple[str, ...] | None = None   # the targets it exists for (None: any, built by our toolchain file)
    tolerance: float = TOLERANCE             # max |difference| to our float engine's output (looser for int8 peers)


PEERS = {kind.name: kind for kind in [
    PeerKind("tflite", "TensorFlow Lite 2.14 (PyPI tflite-runtime, armv7l wheel) in Debian's armhf Python",
             tflite_rt.setup, tflite_rt.TFLitePeer, ("armv7",)),
    PeerKind("litert", "LiteRT 1.4 (PyPI ai-edge-litert, aarch64 wheel, XNNPACK delegate) in Debian's arm64 Python",
             tflite_rt.setup_litert, tflite_rt.LiteRTPeer, ("aarch64",)),
    PeerKind("acl_graph", "ARM Compute Library 20.08 graph API (frontend::Stream), NEON, NCHW, static",
             acl_graph.setup, acl_graph.ACLGraphPeer),
    PeerKind("acl_graph_nhwc", "the same ACL graph API in NHWC (channels last; concatenation copies)",
             acl_graph.setup, acl_graph.ACLGraphNHWCPeer),
    PeerKind("opencv_dnn", "OpenCV 4.6 DNN (Debian armhf), ONNX import, DNN_BACKEND_OPENCV on the CPU",
             opencv_dnn.setup, opencv_dnn.OpenCVPeer, ("armv7",)),
    PeerKind("plain_cpp", "plain C++ loops generated from the same YAML (no ACL), GCC -O3 auto-vectorised, static",
             plain_cpp.setup, plain_cpp.PlainCppPeer),
    PeerKind("xnnpack", "XNNPACK 2022 (Debian bookworm armhf/arm64), operator API, NHWC, copy-free concatenation; "
             "qemu shows the host's /proc/cpuinfo, naming no ARM core: XNNPACK's generic kernels",
             xnnpack.setup, xnnpack.XNNPACKPeer, tuple(xnnpack.ROOTS)),
    PeerKind("xnnpack_a7", "the same XNNPACK seeing a Cortex-A7 /proc/cpuinfo (as on a Zuluko board): its "
             "Cortex-A7 kernels", xnnpack.setup_a7, xnnpack.XNNPACKCortexA7Peer, ("armv7",)),
    PeerKind("xnnpack_int8", "the same XNNPACK in 8 bits (QC8 convolutions, per-channel weights), quantized with "
             "our int8 engine's own plan and calibration photos", xnnpack.setup, xnnpack.XNNPACKInt8Peer,
             tuple(xnnpack.ROOTS), calibration.INT8_TOLERANCE),
    PeerKind("acl24_graph_nhwc", "ARM Compute Library 24.11 graph API (Debian trixie armhf, shared), NEON, NHWC",
             acl_graph.setup_24, acl_graph.ACL24GraphNHWCPeer, ("armv7",)),
    PeerKind("ncnn", f"ncnn {ncnn.VERSION} (PyPI armv7l/aarch64 wheel) in Debian's Python, float32, our own "
             ".param/.bin export", ncnn.setup, ncnn.NcnnPeer, ncnn.TARGETS),
    PeerKind("ncnn_int8", "the same ncnn in int8: per-channel weight scales, activation scales calibrated on our "
             "calibration photos", ncnn.setup, ncnn.NcnnInt8Peer, ncnn.TARGETS, calibration.INT8_TOLERANCE),
    PeerKind("onnxruntime", "ONNX Runtime 1.21 (Debian trixie armhf, C API), CPU execution provider, ONNX import",
             onnxruntime.setup, onnxruntime.ONNXRuntimePeer, ("armv7",)),
    PeerKind("onnxruntime_xnnpack", "the same ONNX Runtime with its XNNPACK execution provider (Debian's XNNPACK "
             "2024-11); placement checked from ORT's profile", onnxruntime.setup, onnxruntime.ONNXRuntimeXNNPACKPeer,
             ("armv7",)),
]}


def check_agreement(name: str, probabilities, reference, tolerance: float | None = None) -> float:
    """base.check_agreement with the peer's own tolerance (TOLERANCE; an int8 peer's looser one) by default."""
    if tolerance is None:
        tolerance = PEERS[name].tolerance if name in PEERS else TOLERANCE
    return base.check_agreement(name, probabilities, reference, tolerance)


def _kinds(names: Iterable[str] | None) -> list[PeerKind]:
    names = list(PEERS) if names is None else list(names)
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise PeerError(f"unknown peer {', '.join(unknown)} (known: {', '.join(PEERS)})")
    return [PEERS[n] for n in names]


def setup(names: Iterable[str] | None = None, log: Log = log_stderr) -> None:
    """Fetch and build what the named peers (default: all) need; quick when everything is cached."""
    for kind in _kinds(names):
        kind.setup(log)


def available(target: str | None = None) -> list[str]:
    """The peers that exist for a target (default: the default target)."""
    from neoncc.targets import toolchain
    target = target or toolchain.default_target()
    return [k.name for k in PEERS.values() if k.targets is None or target in k.targets]


def prepare(name: str, model_yaml: str | Path, npz: str | Path, workdir: str | Path,
            target: str | None = None) -> Peer:
    """The network of model_yaml with the weights of npz, exported for one peer (for target, default: the
    default target) into workdir."""
    (kind,) = _kinds([name])
    features = getattr(kind.make, "features", frozenset())   # the network extensions the peer runs
    if target is None:
        return kind.make(load(model_yaml, npz, features), Path(workdir))
    if kind.targets is not None and target not in kind.targets:
        raise PeerError(f"peer {name} exists only for {', '.join(kind.targets)}, not {target}")
    return kind.make(load(model_yaml, npz, features), Path(workdir), target)
