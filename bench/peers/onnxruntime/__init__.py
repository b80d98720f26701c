"""ONNX Runtime 1.21 from Debian trixie (armhf) as a peer, with its CPU execution provider (`onnxruntime`) or its
XNNPACK execution provider (`onnxruntime_xnnpack`, Debian's libxnnpack 2024-11 underneath).

main.cpp uses ORT's C API (onnxruntime_c_api.h from libonnxruntime-dev) and is built by our cross GCC 12 against
the trixie root: GCC 12's own libc/libstdc++ are older than the ones libonnxruntime.so.1.21 needs, so trixie's
libc.so.6, libm.so.6, libstdc++.so.6 and ld-linux-armhf.so.3 are linked explicitly (with -rpath-link for the rest)
and the program runs under `qemu-arm -L` on the trixie root. The ONNX file is bench/peers/opencv_dnn/onnx_model.py's
(the same model the OpenCV peer reads), so both ONNX peers run one file.

Which execution provider ran the nodes is checked, not assumed: the program profiles one inference in a separate
session and reports how many node events each provider ran, per operator (details["nodes"], summed in
details["nodes_by_provider"]); the XNNPACK peer is refused if a convolution ran outside XNNPACK, the CPU peer unless
the CPU provider ran everything.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from bench.peers import cxx, sysroot
from bench.peers.base import Peer, PeerError
from bench.peers.network import EXTENSIONS, Network
from bench.peers.opencv_dnn import onnx_model
from bench.peers.sysroot import Log, log_stderr

SOURCE = Path(__file__).resolve().parent / "main.cpp"
NAME = "onnxruntime"
ROOT = sysroot.Root("armhf", "trixie")
TRIPLET = sysroot.TRIPLETS["armhf"]
# libonnxruntime1.21's shared-library closure in trixie (Root.check_libraries proves it complete), and the C API
# headers (libonnxruntime-dev: headers and the .so link only).
PACKAGES = ["libonnxruntime1.21", "libonnxruntime-dev", "libc6", "libgcc-s1", "libstdc++6", "libcpuinfo0",
            "libonnx1t64", "libprotobuf32t64", "libpthreadpool0", "libre2-11", "libabsl20240722",
            "libxnnpack0.20241108", "zlib1g"]
CPU_PROVIDER, XNNPACK_PROVIDER = "CPUExecutionProvider", "XnnpackExecutionProvider"


def _lib_link(root: Path) -> None:
    """qemu-arm -L looks for the loader at ROOT/lib/ld-linux-armhf.so.3; trixie's libc6 ships it under usr/lib
    (merged /usr), so the root gets the link a merged-/usr system has."""
    link = root / "lib"
    if not link.exists() and not link.is_symlink():
        with contextlib.suppress(FileExistsError):   # another peer's set-up made it first
            link.symlink_to("usr/lib")


def program(log: Log = log_stderr) -> Path:
    root = ROOT.ensure(PACKAGES, log)
    _lib_link(root)
    libs = root / "usr/lib" / TRIPLET
    rpath_link = ":".join(str(root / d) for d in ROOT.lib_dirs)
    binary = cxx.build(NAME, SOURCE, ["-isystem", str(root / "usr/include/onnxruntime")],
                       [f"-Wl,-rpath-link,{rpath_link}", str(libs / "libonnxruntime.so.1.21"),
                        *(str(libs / lib) for lib in ("libstdc++.so.6", "libm.so.6", "libc.so.6",
                                                        "ld-linux-armhf.so.3"))], log)
    ROOT.check_libraries([binary])
    return binary


def setup(log: Log = log_stderr) -> None:
    program(log)


class ONNXRuntimePeer(Peer):
    """ONNX Runtime's default CPU execution provider (MLAS kernels)."""

    name = NAME
    provider = "cpu"
    sysroot = ROOT.path
    features = frozenset(EXTENSIONS)   # the ONNX writer covers depthwise convolutions, ReLU6, additions and fc layers

    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        super().__init__(network, workdir, target)  # armhf only: prepare() refuses other targets first
        self.binary = program()
        self.model_path = self.workdir / f"{network.name}.onnx"
        self.model_path.write_bytes(onnx_model.write(network))

    def command(self, input_path: Path, output_path: Path, runs: int, warmup: int) -> list[str]:
        c, h, w = self.network.input_shape
        return [self.binary, "--model", self.model_path, "--weights", self.provider, "--shape", f"{c},{h},{w}",
                "--input", input_path, "--output", output_path, "--runs", str(runs), "--warmup", str(warmup),
                "--threads", "1"]

    def inspect(self, report: dict[str, Any], stderr: str) -> dict[str, Any]:
        report["nodes_by_provider"] = _by_provider(report.get("nodes") or {})
        placement = report["nodes_by_provider"]
        others = {p: n for p, n in placement.items() if p != CPU_PROVIDER}
        if not placement.get(CPU_PROVIDER) or others:
            raise PeerError(f"{self.name}: expected every node on {CPU_PROVIDER}, the profile says {report['nodes']}")
        return report


def _by_provider(nodes: dict[str, int]) -> dict[str, int]:
    """{"Provider/Op": n} -> {"Provider": total}."""
    totals: dict[str, int] = {}
    for key, count in nodes.items():
        provider = key.split("/", 1)[0]
        totals[provider] = totals.get(provider, 0) + count
    return totals


class ONNXRuntimeXNNPACKPeer(ONNXRuntimePeer):
    """ONNX Runtime with its XNNPACK execution provider first; it must have taken every convolution."""

    name = "onnxruntime_xnnpack"
    provider = "xnnpack"

    def inspect(self, report: dict[str, Any], stderr: str) -> dict[str, Any]:
        """Every convolution must have run in XNNPACK (as Conv, or fused with its activation): a Conv node left
        on the CPU provider, or fewer XNNPACK nodes than convolutions, refuses the measurement."""
        nodes = report.get("nodes") or {}
        report["nodes_by_provider"] = placement = _by_provider(nodes)
        on_cpu = sum(n for key, n in nodes.items() if key.split("/", 1)[-1] in ("Conv", "FusedConv")
                     and not key.startswith(XNNPACK_PROVIDER))
        convolutions = sum(layer.kind == "conv" for layer in self.network.layers)
        if on_cpu or placement.get(XNNPACK_PROVIDER, 0) < convolutions:
            raise PeerError(f"{self.name}: the XNNPACK execution provider did not run every convolution "
                            f"({convolutions} in the network; profile: {nodes})")
        report["xnnpack_nodes"] = placement[XNNPACK_PROVIDER]
        return report
