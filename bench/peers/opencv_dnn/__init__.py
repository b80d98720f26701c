"""OpenCV 4.6 DNN from Debian armhf as a peer: a barely vectorised engine, the kind of baseline a user reaches for
first. main.cpp is built against Debian's armhf OpenCV headers and shared libraries, unpacked into the peers'
armhf root, and runs there under qemu-arm -L; the network comes from an ONNX file written from the peer network
(onnx_model.py).
"""

from __future__ import annotations

from pathlib import Path

from bench.peers import cxx, sysroot
from bench.peers.base import Peer
from bench.peers.network import Network
from bench.peers.opencv_dnn import onnx_model
from bench.peers.sysroot import Log, log_stderr

SOURCE = Path(__file__).resolve().parent / "main.cpp"
NAME = "opencv_dnn"
# Debian armhf packages: headers (-dev, no dependencies) and the shared libraries libopencv_dnn.so.406 needs.
# libopencv-core406 links libGLX (OpenGL interop), hence the X11 client libraries; apt's own closure would add
# Mesa and LLVM through TBB's hwloc binding, which nothing loads.
PACKAGES = ["libopencv-core-dev", "libopencv-dnn-dev", "libopencv-dnn406", "libopencv-core406",
            "libopencv-imgproc406", "libprotobuf32", "libtbb12", "libblas3", "liblapack3", "libgfortran5",
            "zlib1g", "libstdc++6", "libgcc-s1", "libc6", "libglx0", "libglvnd0", "libx11-6", "libxcb1", "libxau6",
            "libxdmcp6", "libbsd0", "libmd0"]


def program(log: Log = log_stderr) -> Path:
    """The peer binary, dynamically linked against the root's OpenCV (its headers are system headers to the
    compiler, so our -Werror does not judge them)."""
    root = sysroot.ARMHF.ensure(PACKAGES, log)
    libs = root / "usr/lib/arm-linux-gnueabihf"
    rpath_link = ":".join(str(root / d) for d in sysroot.ARMHF.lib_dirs)   # where the linker finds their dependencies
    binary = cxx.build(NAME, SOURCE, ["-isystem", str(root / "usr/include/opencv4")],
                       [f"-Wl,-rpath-link,{rpath_link}", str(libs / "libopencv_dnn.so.406"),
                        str(libs / "libopencv_core.so.406")], log)
    sysroot.ARMHF.check_libraries([binary])
    return binary


def setup(log: Log = log_stderr) -> None:
    program(log)


class OpenCVPeer(Peer):
    name = NAME
    sysroot = sysroot.ARMHF.path

    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        super().__init__(network, workdir, target)  # armhf only: prepare() refuses other targets first
        self.binary = program()
        self.model_path = self.workdir / f"{network.name}.onnx"
        self.model_path.write_bytes(onnx_model.write(network))

    def command(self, input_path: Path, output_path: Path, runs: int, warmup: int) -> list[str]:
        c, h, w = self.network.input_shape
        return [self.binary, "--model", self.model_path, "--shape", f"{c},{h},{w}", "--input", input_path,
                "--output", output_path, "--runs", str(runs), "--warmup", str(warmup), "--threads", "1"]
