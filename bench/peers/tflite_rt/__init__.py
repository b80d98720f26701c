"""TensorFlow Lite 2.14 (tflite-runtime), the successor of the paper's TensorFlow baseline.

PyPI's tflite-runtime 2.14.0 wheel for armv7l / CPython 3.11 runs in Debian's armhf python3.11 (with
python3-numpy) under qemu-arm; the .tflite comes from our YAML and .npz (model.py). One thread, TFLite's default
op resolver, which applies XNNPACK where the build has it. The armv7l wheel does not: its AcquireXNNPACKDelegate
is the weak stub of tflite_with_xnnpack_optional.cc, TFLite logs no delegate creation and the graph keeps no
delegated partition. Each run reports what it saw (details["xnnpack"]) rather than assuming; the kernels that
run are TFLite's built-in optimized ones (ruy GEMM on NEON).

On aarch64 the peer `litert` is the same program on PyPI's ai-edge-litert 1.4.0 aarch64 wheel (LiteRT, TFLite's
successor; XNNPACK built in and applied by the default resolver) in Debian's arm64 python3.11 under
qemu-aarch64. Both wheels sit beside their target's Debian Python root (bench/peers/python_root.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import insncount
from bench.peers import python_root, sysroot
from bench.peers.base import Peer, PeerError
from bench.peers.network import Network
from bench.peers.tflite_rt import model

RUNTIME = "tflite-runtime==2.14.0"          # armv7: the last tflite-runtime with an armv7l wheel
LITERT = "ai-edge-litert==1.4.0"           # aarch64: LiteRT, XNNPACK built in and applied by default
GUEST_SCRIPT = Path(__file__).resolve().parent / "guest.py"
EMPTY_BEGIN, EMPTY_END = 0x10002, 0x10003   # guest.py's markers around nothing
XNNPACK_MESSAGE = "Created TensorFlow Lite XNNPACK delegate for CPU"


def _setup(requirement: str, package: str, target: str, log: sysroot.Log) -> Path:
    """Debian's Python and numpy in the target's peers' root and the wheel unzipped beside it; its site."""
    python_root.ensure(target, log)
    site = python_root.wheel_site(requirement, target, log, marker=f"{package}/interpreter.py")
    python_root.check(target, site.glob(f"{package}/*.so"))
    return site


def setup(log: sysroot.Log = sysroot.log_stderr) -> None:
    """armv7: Debian's armhf Python and numpy in the peers' root, and the tflite-runtime wheel beside it."""
    _setup(RUNTIME, "tflite_runtime", "armv7", log)


def setup_litert(log: sysroot.Log = sysroot.log_stderr) -> None:
    """aarch64: Debian's arm64 Python and numpy, and the ai-edge-litert wheel beside it."""
    _setup(LITERT, "ai_edge_litert", "aarch64", log)


class TFLitePeer(Peer):
    """The interpreter of a TFLite wheel, run by guest.py in Debian's Python (armv7: tflite-runtime)."""
    name = "tflite"
    requirement, package, targets = RUNTIME, "tflite_runtime", ("armv7",)

    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        super().__init__(network, workdir, target)
        if self.target not in self.targets:
            raise PeerError(f"peer {self.name} exists only for {', '.join(self.targets)}, not {self.target}")
        self.sysroot = python_root.root_of(self.target).path
        self.site = _setup(self.requirement, self.package, self.target, sysroot.log_stderr)
        self.model_path = self.workdir / f"{network.name}.tflite"
        self.model_path.write_bytes(model.write(network))

    def command(self, input_path: Path, output_path: Path, runs: int, warmup: int) -> list[str]:
        if not (self.site / self.package).is_dir():
            raise PeerError(f"{self.name}: {self.requirement} is not unpacked in {self.site}: run "
                            "`python3 -m bench.peers setup`")
        c, h, w = self.network.input_shape
        return [python_root.interpreter(self.target), GUEST_SCRIPT, "--site", self.site, "--package",
                self.package, "--model", self.model_path, "--shape", f"{c},{h},{w}", "--input", input_path,
                "--output", output_path, "--runs", str(runs), "--warmup", str(warmup), "--threads", "1"]

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



class LiteRTPeer(TFLitePeer):
    """LiteRT (ai-edge-litert, TFLite's successor) on aarch64: its default op resolver applies XNNPACK."""
    name = "litert"
    requirement, package, targets = LITERT, "ai_edge_litert", ("aarch64",)
