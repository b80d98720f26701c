"""XNNPACK as a peer: Debian bookworm's libxnnpack0 (a 2022-02 snapshot, shared library, with its cpuinfo and
pthreadpool) through the operator API, channels-last, with copy-free fire-module concatenations (main.cpp).
Besides SqueezeNet's layers it runs EfficientNet-Lite's (depthwise convolutions, ReLU6, addition, fully
connected: network.EXTENSIONS).

XNNPACK picks its microkernels from what cpuinfo reads in /proc/cpuinfo. Under qemu-arm that file is the host's
(an x86 one: no ARM core is named, so XNNPACK takes its generic ARMv7 NEON kernels): peer `xnnpack`. A real
Zuluko board names a Cortex-A7, for which XNNPACK has kernels of its own: peer `xnnpack_a7` runs in a second root
that is the armhf root plus a Cortex-A7 proc/cpuinfo (qemu-arm -L looks files up in the root first). Each run
reports the core cpuinfo detected, and a peer whose detection is not what its label says is refused.

`xnnpack_int8` is the same program on XNNPACK's 8-bit operators (QC8 convolutions with int8 weights per output
channel, S8 max pooling, QS8 global average pooling and addition), quantized exactly as our int8 engine is: the
plan of neoncc.quantize.plan.make_plan from the same calibration inputs (bench/peers/calibration.py), every
tensor's scale and zero point (QASYMM8 offset - 128 as XNNPACK's signed zero point), the same per-channel weight
scales, and the same float32 tail (the softmax, and a fully connected layer right before it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.peers import calibration, cxx, sysroot
from bench.peers.acl_graph import write_plan
from bench.peers.base import Peer, PeerError
from bench.peers.network import Network
from bench.peers.sysroot import Log, log_stderr
from neoncc.targets import toolchain

SOURCE = Path(__file__).resolve().parent / "main.cpp"
NAME = "xnnpack"
PACKAGES = ["libxnnpack0", "libxnnpack-dev", "libcpuinfo0", "libcpuinfo-dev", "libpthreadpool0",
            "libpthreadpool-dev", "libstdc++6", "libgcc-s1", "libc6"]
ROOTS = {"armv7": sysroot.ARMHF, "aarch64": sysroot.Root("arm64")}   # Debian bookworm ships XNNPACK for both
CORTEX_A7 = "0x00300207"    # cpuinfo_uarch_cortex_a7 (cpuinfo.h)
A7_ROOT = sysroot.CACHE / "sysroot-armhf-cortex-a7"
# What the Linux kernel shows for one Cortex-A7 core (as on the emulated board with -cpu cortex-a7).
A7_CPUINFO = """processor\t: 0
model name\t: ARMv7 Processor rev 5 (v7l)
BogoMIPS\t: 48.00
Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm
CPU implementer\t: 0x41
CPU architecture: 7
CPU variant\t: 0x0
CPU part\t: 0xc07
CPU revision\t: 5

Hardware\t: Generic DT based system
Revision\t: 0000
Serial\t\t: 0000000000000000
"""


def program(log: Log = log_stderr, target: str | None = None) -> Path:
    """The peer binary for target (default: the default target), dynamically linked against its root's XNNPACK,
    cpuinfo and pthreadpool (their headers are system headers to the compiler, so our -Werror does not judge
    them)."""
    target = target or toolchain.default_target()
    packages = ROOTS[target]
    root = packages.ensure(PACKAGES, log)
    headers = cxx.header_links(f"xnnpack-include-{packages.arch}",
                               [root / "usr/include" / name for name in ("xnnpack.h", "cpuinfo.h", "pthreadpool.h")])
    libs = root / "usr/lib" / sysroot.TRIPLETS[packages.arch]
    rpath_link = ":".join(str(root / d) for d in packages.lib_dirs)
    binary = cxx.build(NAME, SOURCE, ["-isystem", str(headers)],
                       [f"-Wl,-rpath-link,{rpath_link}", str(libs / "libXNNPACK.so.0"), str(libs / "libcpuinfo.so.0"),
                        str(libs / "libpthreadpool.so.0")], log, target)
    packages.check_libraries([binary])
    return binary


def a7_root(log: Log = log_stderr) -> Path:
    """The armhf root seen with a Cortex-A7 /proc/cpuinfo: links to the root's top-level directories plus
    proc/cpuinfo (the shared armhf root itself stays as the other peers see it)."""
    root = sysroot.ARMHF.ensure(PACKAGES, log)
    with sysroot.locked(A7_ROOT.name):
        (A7_ROOT / "proc").mkdir(parents=True, exist_ok=True)
        for entry in root.iterdir():
            link = A7_ROOT / entry.name
            if entry.is_dir() and entry.name != "proc" and not link.is_symlink():
                link.symlink_to(Path("..") / root.name / entry.name)
        cpuinfo = A7_ROOT / "proc" / "cpuinfo"
        if not cpuinfo.is_file() or cpuinfo.read_text() != A7_CPUINFO:
            partial = cpuinfo.with_name("cpuinfo.partial")
            partial.write_text(A7_CPUINFO)
            partial.replace(cpuinfo)
    return A7_ROOT


def setup(log: Log = log_stderr) -> None:
    program(log)


def setup_a7(log: Log = log_stderr) -> None:
    program(log)
    a7_root(log)


class XNNPACKPeer(Peer):
    name = NAME
    sysroot = sysroot.ARMHF.path
    features = frozenset({"depthwise", "relu6", "add", "fc"})   # EfficientNet-Lite's layers too

    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        super().__init__(network, workdir, target)  # prepare() refuses targets without a root first
        self.sysroot = ROOTS[self.target].path
        self.binary = program(target=self.target)
        self.plan, self.weights = write_plan(network, self.workdir, "NHWC")

    def command(self, input_path: Path, output_path: Path, runs: int, warmup: int) -> list[str]:
        c, h, w = self.network.input_shape
        return [self.binary, "--model", self.plan, "--weights", self.weights, "--shape", f"{c},{h},{w}",
                "--input", input_path, "--output", output_path, "--runs", str(runs), "--warmup", str(warmup),
                "--threads", "1"]

    def inspect(self, report: dict[str, Any], stderr: str) -> dict[str, Any]:
        if report.get("uarch") == CORTEX_A7:
            raise PeerError(f"{self.name}: XNNPACK detected a Cortex-A7 from the host's /proc/cpuinfo; this peer "
                            f"stands for the generic kernels (xnnpack_a7 is the Cortex-A7 one)")
        return report


class XNNPACKCortexA7Peer(XNNPACKPeer):
    name = f"{NAME}_a7"
    sysroot = A7_ROOT

    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        super().__init__(network, workdir, target)   # armv7 only (the registry says so)
        self.sysroot = a7_root()

    def inspect(self, report: dict[str, Any], stderr: str) -> dict[str, Any]:
        if report.get("uarch") != CORTEX_A7:
            raise PeerError(f"{self.name}: XNNPACK's cpuinfo detected core {report.get('uarch')}, not a Cortex-A7 "
                            f"({CORTEX_A7}), from {A7_ROOT / 'proc/cpuinfo'}")
        return report


class XNNPACKInt8Peer(XNNPACKPeer):
    name = f"{NAME}_int8"

    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        super().__init__(network, workdir, target)
        from neoncc.quantize.plan import make_plan
        plan = make_plan(network.graph, calibration.inputs(network, self.name))
        nodes = {node.name: node for node in network.graph.nodes}
        lines = [f"quant {network.input_name} {_qs8(plan.tensors[network.input_name])}"]
        for layer in network.layers:
            node = nodes[layer.name]
            if layer.name in plan.float_tail:
                continue
            if node.output != layer.name:
                raise PeerError(f"{self.name}: layer '{layer.name}' writes tensor '{node.output}' (the plan names "
                                "tensors after their layers)")
            lines.append(f"quant {layer.name} {_qs8(plan.tensors[node.output])}")
            if layer.kind == "conv":
                lines.append(f"wscale {layer.name} " + " ".join(f"{s:.9g}" for s in plan.weight_scales[layer.name]))
        with open(self.plan, "a") as plan_file:
            plan_file.write("\n".join(lines) + "\n")
        self.float_tail = list(plan.float_tail)

    def inspect(self, report: dict[str, Any], stderr: str) -> dict[str, Any]:
        report = super().inspect(report, stderr)
        report["calibration"] = (calibration.describe(self.network) + ": our int8 engine's plan (99.99th-percentile "
                                 "ranges, per-tensor activations, per-channel weights); float32: "
                                 + (", ".join(self.float_tail) or "nothing"))
        report["tolerance"] = calibration.INT8_TOLERANCE
        return report


def _qs8(quant: tuple[float, int]) -> str:
    """Our QASYMM8 (scale, offset) as XNNPACK's signed 8 bits: the same scale, zero point offset - 128."""
    scale, offset = quant
    return f"{scale:.9g} {offset - 128}"
