"""ARM Compute Library 20.08's own graph API as a peer: the same library as our engine, driven the way ACL's
examples drive it (arm_compute::graph::frontend, target NEON, default GraphConfig, fast math off), so the
difference to our engine is what our generator does instead of ACL's graph machinery. acl_graph runs NCHW like
our engine; acl_graph_nhwc runs the same graph channels-last, which measures the layout trade-off on the whole
network (ACL's NHWC kernels against NCHW's copy-free concatenation).

main.cpp reads a plan (text, one layer a line) and a float32 weight file written here from the peer network;
it links statically against libarm_compute_graph-static.a from the project's ACL sysroot.

ACL 24.11 (Debian trixie armhf, shared libraries only) runs the same main.cpp as acl24_graph_nhwc: built against
its headers and linked against trixie's libarm_compute*.so.43 with trixie's C and C++ runtime given explicitly
(our GCC 12 with trixie's libstdc++ 14), run under qemu-arm -L on the trixie root.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.peers import cxx, sysroot
from bench.peers.base import Peer, PeerError
from bench.peers.network import Layer, Network
from bench.peers.sysroot import Log, log_stderr
from neoncc.targets import toolchain

SOURCE = Path(__file__).resolve().parent / "main.cpp"
NAME = "acl_graph"
ACL24 = sysroot.Root("armhf", "trixie")
# ACL 24.11's headers and libraries, and the C/C++ runtime they were built against (linked explicitly: our cross
# GCC 12's own glibc 2.36 and libstdc++ are older than what trixie's ACL needs).
ACL24_PACKAGES = ["libarm-compute-dev", "libarm-compute43", "libc6", "libc6-dev", "libstdc++6", "libgcc-s1"]
ACL24_HEADERS = ("arm_compute", "support", "utils", "half", "libnpy", "CL", "stb")   # not trixie's glibc headers


def program(log: Log = log_stderr, target: str | None = None) -> Path:
    """The static peer binary for target (built once per source/flags change). The graph library registers its
    NEON backend from a static initialiser nothing references, hence --whole-archive."""
    target = toolchain.load(target or toolchain.default_target())
    toolchain.ensure_sysroot(target, log)
    includes = [f"-I{d}" for d in target.include_dirs]
    libs = ["-static", f"-L{target.lib_dir}", "-Wl,--whole-archive", "-larm_compute_graph-static",
            "-Wl,--no-whole-archive", "-larm_compute-static", "-larm_compute_core-static"]
    return cxx.build(NAME, SOURCE, includes, libs, log, target.name)


def program_24(log: Log = log_stderr) -> Path:
    """The ACL 24.11 peer binary (armv7 only), dynamically linked against the trixie root's ACL. Its include
    directory holds links to ACL's headers alone, so the compiler keeps its own glibc headers."""
    root = ACL24.ensure(ACL24_PACKAGES, log)
    if not (root / "lib").exists():    # the loader's /lib/ld-linux-armhf.so.3 lives in usr/lib (merged /usr)
        (root / "lib").symlink_to("usr/lib")
    triplet = sysroot.TRIPLETS["armhf"]
    headers = cxx.header_links("acl-24.11-include", [root / "usr/include" / triplet / name for name in ACL24_HEADERS])
    libs = root / "usr/lib" / triplet
    rpath_link = ":".join(str(root / d) for d in ACL24.lib_dirs)
    runtime = ["libarm_compute_graph.so.43", "libarm_compute.so.43", "libstdc++.so.6", "libm.so.6", "libc.so.6",
               "libgcc_s.so.1", "ld-linux-armhf.so.3"]
    missing = [name for name in runtime if not (libs / name).exists()]
    if missing:
        raise PeerError(f"ACL 24.11 peer: {libs} lacks {', '.join(missing)}")
    binary = cxx.build(f"{NAME}_24.11", SOURCE, ["-isystem", str(headers)],
                       [f"-Wl,-rpath-link,{rpath_link}", *(str(libs / name) for name in runtime)], log)
    ACL24.check_libraries([binary])
    return binary


def setup(log: Log = log_stderr) -> None:
    program(log)


def setup_24(log: Log = log_stderr) -> None:
    program_24(log)


def _plan_line(layer: Layer) -> str:
    def window() -> list[int]:   # ACL rounds up as Caffe does when told CEIL
        return [*layer.kernel, *layer.stride, *layer.pad, int(layer.ceil)]

    def activation() -> int:     # 0 none, 1 ReLU, 6 ReLU6 (an extension: only peers that list it get it)
        return 6 if layer.relu6 else int(layer.relu)

    fields: list = [layer.kind, layer.name, *layer.inputs]
    if layer.kind == "conv":
        fields += [layer.shape[0], layer.input_shapes[0][0], *window(), activation()]
        if layer.groups != 1:    # an extension too: the plan of an ungrouped network stays as it was
            fields.append(layer.groups)
    elif layer.kind in ("maxpool", "avgpool"):
        fields += window()
    elif layer.kind in ("add", "fc"):
        fields += ([layer.shape[0]] if layer.kind == "fc" else []) + [activation()]
    return " ".join(map(str, fields))


def write_plan(network: Network, workdir: Path, layout: str) -> tuple[Path, Path]:
    """The plan (main.cpp's format; also the XNNPACK peer's, which adds `conv ... ACT GROUPS` for depthwise
    convolutions, `add NAME IN1 IN2 ACT` and `fc NAME IN UNITS ACT`) and its weight file (each convolution's and
    fully connected layer's weights (OIHW, OI), then bias, float32) in workdir."""
    plan, weights = workdir / f"{network.name}.plan", workdir / f"{network.name}.f32"
    lines = [f"input {network.input_name} {' '.join(map(str, network.input_shape))} {layout}"]
    lines += [_plan_line(layer) for layer in network.layers]
    plan.write_text("\n".join(lines) + "\n")
    convs = [layer for layer in network.layers if layer.kind in ("conv", "fc")]
    blob = [array.ravel() for layer in convs for array in (layer.weight, layer.bias)]
    np.concatenate(blob).astype("<f4").tofile(weights)
    return plan, weights


class ACLGraphPeer(Peer):
    """layout "NHWC" runs the whole graph channels-last (ACL permutes the NCHW weights and input once at load):
    the same library's other layout, whose channel concatenation cannot be copy-free."""

    name = NAME
    sysroot = None   # static binary
    layout = "NCHW"

    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        super().__init__(network, workdir, target)
        self.binary = self.build()
        self.plan, self.weights = write_plan(network, self.workdir, self.layout)

    def build(self) -> Path:
        return program(target=self.target)

    def command(self, input_path: Path, output_path: Path, runs: int, warmup: int) -> list[str]:
        c, h, w = self.network.input_shape
        return [self.binary, "--model", self.plan, "--weights", self.weights, "--shape", f"{c},{h},{w}",
                "--input", input_path, "--output", output_path, "--runs", str(runs), "--warmup", str(warmup),
                "--threads", "1"]


class ACLGraphNHWCPeer(ACLGraphPeer):
    name = f"{NAME}_nhwc"
    layout = "NHWC"


class ACL24GraphNHWCPeer(ACLGraphNHWCPeer):
    """ACL 24.11's graph API in NHWC (Debian trixie armhf, shared libraries, run in the trixie root)."""

    name = "acl24_graph_nhwc"
    sysroot = ACL24.path

    def build(self) -> Path:
        return program_24()
