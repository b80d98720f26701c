"""ARM Compute Library 20.08's own graph API as a peer: the same library as our engine, driven the way ACL's
examples drive it (arm_compute::graph::frontend, target NEON, default GraphConfig, fast math off), so the
difference to our engine is what our generator does instead of ACL's graph machinery. acl_graph runs NCHW like
our engine; acl_graph_nhwc runs the same graph channels-last, which measures the layout trade-off on the whole
network (ACL's NHWC kernels against NCHW's copy-free concatenation).

main.cpp reads a plan (text, one layer a line) and a float32 weight file written here from the peer network;
it links statically against libarm_compute_graph-static.a from the project's ACL sysroot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.peers import cxx
from bench.peers.base import Peer
from bench.peers.network import Layer, Network
from bench.peers.sysroot import Log, log_stderr
from neoncc.targets import toolchain

SOURCE = Path(__file__).resolve().parent / "main.cpp"
NAME = "acl_graph"


def program(log: Log = log_stderr, target: str | None = None) -> Path:
    """The static peer binary for target (built once per source/flags change). The graph library registers its
    NEON backend from a static initialiser nothing references, hence --whole-archive."""
    target = toolchain.load(target or toolchain.default_target())
    toolchain.ensure_sysroot(target, log)
    includes = [f"-I{d}" for d in target.include_dirs]
    libs = ["-static", f"-L{target.lib_dir}", "-Wl,--whole-archive", "-larm_compute_graph-static",
            "-Wl,--no-whole-archive", "-larm_compute-static", "-larm_compute_core-static"]
    return cxx.build(NAME, SOURCE, includes, libs, log, target.name)


def setup(log: Log = log_stderr) -> None:
    program(log)


def _plan_line(layer: Layer) -> str:
    def window() -> list[int]:   # ACL rounds up as Caffe does when told CEIL
        return [*layer.kernel, *layer.stride, *layer.pad, int(layer.ceil)]

    fields: list = [layer.kind, layer.name, *layer.inputs]
    if layer.kind == "conv":
        fields += [layer.shape[0], layer.input_shapes[0][0], *window(), int(layer.relu)]
    elif layer.kind in ("maxpool", "avgpool"):
        fields += window()
    return " ".join(map(str, fields))


class ACLGraphPeer(Peer):
    """layout "NHWC" runs the whole graph channels-last (ACL permutes the NCHW weights and input once at load):
    the same library's other layout, whose channel concatenation cannot be copy-free."""

    name = NAME
    sysroot = None   # static binary
    layout = "NCHW"

    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        super().__init__(network, workdir, target)
        self.binary = program(target=self.target)
        self.plan = self.workdir / f"{network.name}.plan"
        self.weights = self.workdir / f"{network.name}.f32"
        lines = [f"input {network.input_name} {' '.join(map(str, network.input_shape))} {self.layout}"]
        lines += [_plan_line(layer) for layer in network.layers]
        self.plan.write_text("\n".join(lines) + "\n")
        convs = [layer for layer in network.layers if layer.kind == "conv"]
        blob = [array.ravel() for layer in convs for array in (layer.weight, layer.bias)]
        np.concatenate(blob).astype("<f4").tofile(self.weights)

    def command(self, input_path: Path, output_path: Path, runs: int, warmup: int) -> list[str]:
        c, h, w = self.network.input_shape
        return [self.binary, "--model", self.plan, "--weights", self.weights, "--shape", f"{c},{h},{w}",
                "--input", input_path, "--output", output_path, "--runs", str(runs), "--warmup", str(warmup),
                "--threads", "1"]


class ACLGraphNHWCPeer(ACLGraphPeer):
    name = f"{NAME}_nhwc"
    layout = "NHWC"
