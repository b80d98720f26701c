"""TensorFlow Lite 2.14 (tflite-runtime), the successor of the paper's TensorFlow baseline.

PyPI's tflite-runtime 2.14.0 wheel for armv7l / CPython 3.11 runs in Debian's armhf python3.11 (with
python3-numpy) under qemu-arm; the .tflite comes from our YAML and .npz (model.py). One thread, TFLite's default
op resolver, which applies XNNPACK where the build has it. The armv7l wheel does not: its AcquireXNNPACKDelegate
is the weak stub of tflite_with_xnnpack_optional.cc, TFLite logs no delegate creation and the graph keeps no
delegated partition. Each run reports what it saw (details["xnnpack"]) rather than assuming; the kernels that
run are TFLite's built-in optimized ones (ruy GEMM on NEON).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

from bench import insncount
from bench.peers import sysroot
from bench.peers.base import Peer, PeerError
from bench.peers.network import Network
from bench.peers.tflite_rt import model

RUNTIME = "tflite-runtime==2.14.0"
WHEEL_PLATFORM = "manylinux_2_34_armv7l"   # the wheel's own tag: pip does not match plain linux_armv7l to it
PYTHON_VERSION = "311"                     # Debian 12's python3.11
SITE = sysroot.CACHE / "tflite-runtime-2.14.0"
PYTHON = "usr/bin/python3.11"
GUEST_SCRIPT = Path(__file__).resolve().parent / "guest.py"
EMPTY_BEGIN, EMPTY_END = 0x10002, 0x10003   # guest.py's markers around nothing
XNNPACK_MESSAGE = "Created TensorFlow Lite XNNPACK delegate for CPU"
# Debian armhf packages: the interpreter, numpy and what their shared objects and _ctypes need
# (Root.check_libraries proves the list complete).
PACKAGES = ["libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libexpat1", "libffi8", "libbz2-1.0", "liblzma5",
            "libpython3.11-minimal", "python3.11-minimal", "libpython3.11-stdlib", "python3-numpy", "libblas3",
            "liblapack3", "libgfortran5"]


def setup(log: sysroot.Log = sysroot.log_stderr) -> None:
    """Debian's armhf Python and numpy in the peers' root, and the tflite-runtime wheel unpacked beside it."""
    root = sysroot.ARMHF.ensure(PACKAGES, log)
    with sysroot.locked("tflite-runtime"):
        if not (SITE / "tflite_runtime" / "interpreter.py").is_file():
            wheel = sysroot.pip_download(RUNTIME, WHEEL_PLATFORM, PYTHON_VERSION)
            log(f"unpacking {wheel.name}")
            staging = SITE.with_name(SITE.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(staging)
            shutil.rmtree(SITE, ignore_errors=True)
            staging.rename(SITE)
    numpy_core = root / "usr/lib/python3/dist-packages/numpy/core"
    sysroot.ARMHF.check_libraries([root / PYTHON, *numpy_core.glob("*.so"), *SITE.glob("tflite_runtime/*.so"),
                                   *(root / "usr/lib/python3.11/lib-dynload").glob("_ctypes.*.so")])


class TFLitePeer(Peer):
    name = "tflite"
    sysroot = sysroot.ARMHF.path

    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        super().__init__(network, workdir, target)  # armhf only: prepare() refuses other targets first
        setup()
        self.model_path = self.workdir / f"{network.name}.tflite"
        self.model_path.write_bytes(model.write(network))

    def command(self, input_path: Path, output_path: Path, runs: int, warmup: int) -> list[str]:
        if not (SITE / "tflite_runtime").is_dir():
            raise PeerError(f"{self.name}: tflite-runtime is not unpacked in {SITE}: run "
                            "`python3 -m bench.peers setup`")
        c, h, w = self.network.input_shape
        return [self.sysroot / PYTHON, GUEST_SCRIPT, "--site", SITE, "--model", self.model_path,
                "--shape", f"{c},{h},{w}", "--input", input_path, "--output", output_path, "--runs", str(runs),
                "--warmup", str(warmup), "--threads", "1"]

    def instructions(self, counts: insncount.Result) -> list[int]:
        """Each inference's span less the median span of the guest's empty marker pair: what remains is
        Interpreter.invoke() as a Python program calls it, without the two ctypes calls that mark it."""
        spans, empty = super().instructions(counts), sorted(counts.between(EMPTY_BEGIN, EMPTY_END))
        if not empty:
            raise PeerError(f"{self.name}: the guest wrote no empty marker pair")
        return [span - empty[(len(empty) - 1) // 2] for span in spans]

    def inspect(self, report: dict[str, Any], stderr: str) -> dict[str, Any]:
        """XNNPACK counts as applied only if TFLite logged creating it and a delegated partition exists."""
        report["xnnpack"] = XNNPACK_MESSAGE in stderr and report["delegate_nodes"] > 0
        report["ops"] = len(report["ops"])
        return report

