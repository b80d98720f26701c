"""A plain C++ reference as a peer: the same network generated from the same YAML as textbook loops (direct
convolution, windowed pooling, softmax) with no ACL and no hand-written SIMD, cross-compiled with our toolchain
file. It answers "what would GCC alone make of this network": sizes are compile-time constants and the build adds
-O3 plus -funsafe-math-optimizations, without which GCC does not vectorise float loops for ARMv7 NEON (NEON
flushes denormals, so strict IEEE forbids it).

The program is generated per network (network.cpp.j2) and cached under a hash of its source; the weights travel
in a float32 file, as for the ACL graph peer.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import numpy as np

from bench.peers import cxx
from bench.peers.base import Peer, PeerError
from bench.peers.network import Layer, Network
from bench.peers.sysroot import Log, log_stderr

TEMPLATE = Path(__file__).resolve().parent / "network.cpp.j2"
NAME = "plain_cpp"
FLAGS = ["-O3", "-funsafe-math-optimizations"]


def setup(log: Log = log_stderr) -> None:
    """Nothing to fetch: the program is generated and built per network by PlainCppPeer."""


def _padded(layer: Layer) -> tuple[int, int]:
    """Rows and columns of the zero-padded copy a convolution reads, large enough for every window."""
    (_, h, w), (kh, kw), (sh, sw) = layer.input_shapes[0], layer.kernel, layer.stride
    top, bottom, left, right = layer.pad
    _, out_h, out_w = layer.shape
    return max(h + top + bottom, (out_h - 1) * sh + kh), max(w + left + right, (out_w - 1) * sw + kw)


def source(network: Network) -> tuple[str, int]:
    """The C++ program of a network and the number of float32 weights it reads."""
    var = {network.input_name: "input.data()"}
    layers, offset, scratch = [], 0, 1
    for index, layer in enumerate(network.layers):
        (c, h, w), size = layer.input_shapes[0], int(np.prod(layer.shape))
        args = [var[t] for t in layer.inputs]
        out = f"t{index}"
        kh, kw = layer.kernel
        sh, sw = layer.stride
        top, _, left, _ = layer.pad
        o, oh, ow = layer.shape
        if layer.kind == "conv":
            hp, wp = _padded(layer)
            if (hp, wp) != (h, w):
                scratch = max(scratch, c * hp * wp)
            weights, bias = offset, offset + layer.weight.size
            offset = bias + layer.bias.size
            params = [c, h, w, o, kh, kw, sh, sw, top, left, hp, wp, oh, ow, str(layer.relu).lower()]
            call = (f"conv<{', '.join(map(str, params))}>({args[0]}, w + {weights}, w + {bias}, {out}.data(), "
                    "scratch.data())")
        elif layer.kind == "maxpool":
            call = f"maxpool<{c}, {h}, {w}, {kh}, {kw}, {sh}, {sw}, {top}, {left}, {oh}, {ow}>({args[0]}, {out}.data())"
        elif layer.kind == "avgpool":
            call = f"avgpool<{c}, {h}, {w}, {kh}, {kw}, {sh}, {sw}, {oh}, {ow}>({args[0]}, {out}.data())"
        elif layer.kind == "global_avgpool":
            call = f"global_avgpool<{c}, {h * w}>({args[0]}, {out}.data())"
        elif layer.kind == "concat":
            sizes = [int(np.prod(s)) for s in layer.input_shapes]
            call = f"concat<{sizes[0]}, {sizes[1]}>({args[0]}, {args[1]}, {out}.data())"
        else:   # softmax (network.py admits nothing else)
            call = f"softmax<{c}>({args[0]}, {out}.data())"
        var[layer.name] = f"{out}.data()"
        layers.append({"name": layer.name, "var": out, "size": size, "shape": layer.shape, "call": call})
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), trim_blocks=True,
                                     lstrip_blocks=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = environment.get_template(TEMPLATE.name).render(network=network, layers=layers, weight_count=offset,
                                                          scratch=scratch, flags=" ".join(FLAGS))
    return text, offset


class PlainCppPeer(Peer):
    name = NAME
    sysroot = None   # static binary

    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        super().__init__(network, workdir, target)
        text, count = source(network)
        program = self.workdir / f"{network.name}.cpp"
        program.write_text(text)
        self.binary = cxx.build(f"{NAME}-{network.name}", program, FLAGS, ["-static"], log_stderr, self.target)
        self.weights = self.workdir / f"{network.name}.f32"
        convs = [layer for layer in network.layers if layer.kind == "conv"]
        blob = np.concatenate([array.ravel() for layer in convs for array in (layer.weight, layer.bias)])
        if blob.size != count:
            raise PeerError(f"{NAME}: the program reads {count} weights, the network has {blob.size}")
        blob.astype("<f4").tofile(self.weights)

    def command(self, input_path: Path, output_path: Path, runs: int, warmup: int) -> list[str]:
        c, h, w = self.network.input_shape
        return [self.binary, "--weights", self.weights, "--shape", f"{c},{h},{w}",
                "--input", input_path, "--output", output_path, "--runs", str(runs), "--warmup", str(warmup)]
