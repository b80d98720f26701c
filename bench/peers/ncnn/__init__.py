"""ncnn (Tencent's inference engine for phones and boards) as a peer, float32 (`ncnn`) and int8 (`ncnn_int8`).

PyPI's ncnn wheels for CPython 3.11 (armv7l manylinux_2_31 and aarch64, their OpenMP runtime bundled in
ncnn.libs) run in Debian's python3.11 + numpy root of the target (bench/peers/python_root.py, the TFLite/LiteRT
peers' roots) under qemu-arm / qemu-aarch64. The model is written by our
own exporter (model.py) from the peer network: no converter. ncnn runs with its defaults (Winograd and sgemm
convolutions, packed layouts) on one thread, except that fp16/bf16 storage is switched off so float32 is float32.

int8: every convolution in ncnn's int8 form (`8=2`: int8 weights with one scale per output channel, 127/max|w|,
and one activation scale for its input). The activation scales come from the same calibration as our int8
engine: the calibration photos of bench/photos.py (30 crops of 10 photos that are not test inputs), run through
the float graph (neoncc.quantize.plan's PyTorch pass), each convolution input's range taken as the mean over
batches of its 99.99th percentiles (our default); ncnn quantizes symmetrically, so scale = 127 / max(|low|, high).
Its output is compared with our float engine's to a looser tolerance (INT8_TOLERANCE), reported as such.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


from bench import insncount
from bench.peers import calibration, python_root, sysroot
from bench.peers.base import Peer, PeerError
from bench.peers.ncnn import model
from bench.peers.network import EXTENSIONS, Network

VERSION = "1.0.20261020"
WHEEL = f"ncnn=={VERSION}"
TARGETS = ("armv7", "aarch64")   # PyPI has manylinux armv7l and aarch64 wheels; Debian has python3.11 for both
GUEST_SCRIPT = Path(__file__).resolve().parent / "guest.py"
EMPTY_BEGIN, EMPTY_END = 0x10002, 0x10003   # guest.py's markers around nothing


def site(target: str, log: sysroot.Log = sysroot.log_stderr) -> Path:
    """Debian's Python and numpy in the target's peers' root and the ncnn wheel unzipped beside it (its OpenMP
    runtime in ncnn.libs, found through the extension's $ORIGIN runpath); returns the wheel's directory."""
    python_root.ensure(target, log)
    unpacked = python_root.wheel_site(WHEEL, target, log, marker="ncnn/__init__.py")
    python_root.check(target, unpacked.glob("ncnn/ncnn.cpython-311-*.so"))
    return unpacked


def setup(log: sysroot.Log = sysroot.log_stderr) -> None:
    """The default target's (armv7) set-up; another target's happens when a peer is prepared for it."""
    site("armv7", log)


def activation_scales(network: Network) -> dict[str, float]:
    """Convolution name -> ncnn's int8 scale of its input, from our calibration inputs (see the module doc)."""
    from neoncc.quantize.plan import DEFAULT_PERCENTILE, statistics

    ranges = statistics(network.graph, calibration.inputs(network, "ncnn_int8"), "percentile",
                        DEFAULT_PERCENTILE).ranges
    scales = {}
    for layer in network.layers:
        if layer.kind in ("conv", "fc"):
            low, high = ranges[layer.inputs[0]]
            peak = max(abs(low), abs(high))
            scales[layer.name] = 127.0 / peak if peak > 0 else 1.0
    return scales


class NcnnPeer(Peer):
    name = "ncnn"
    int8 = False
    features = frozenset(EXTENSIONS)   # model.py writes depthwise convolutions, ReLU6, additions and fully connected layers
    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        super().__init__(network, workdir, target)
        if self.target not in TARGETS:
            raise PeerError(f"peer {self.name} exists only for {', '.join(TARGETS)}, not {self.target}")
        self.sysroot = python_root.root_of(self.target).path
        self.site = site(self.target)
        self.scales = activation_scales(network) if self.int8 else None
        param, weights = model.write(network, self.scales)
        self.param_path = self.workdir / f"{network.name}.param"
        self.bin_path = self.workdir / f"{network.name}.bin"
        self.param_path.write_text(param)
        self.bin_path.write_bytes(weights)

    def command(self, input_path: Path, output_path: Path, runs: int, warmup: int) -> list[str]:
        if not (self.site / "ncnn").is_dir():
            raise PeerError(f"{self.name}: ncnn is not unpacked in {self.site}: run `python3 -m bench.peers setup`")
        c, h, w = self.network.input_shape
        return [python_root.interpreter(self.target), GUEST_SCRIPT, "--site", self.site, "--param", self.param_path,
                "--bin", self.bin_path, "--input-blob", self.network.input_name,
                "--output-blob", self.network.layers[-1].name, "--shape", f"{c},{h},{w}", "--input", input_path,
                "--output", output_path, "--runs", str(runs), "--warmup", str(warmup), "--threads", "1",
                *(["--int8"] if self.int8 else [])]

    def instructions(self, counts: insncount.Result) -> list[int]:
        """Each inference's span less the median span of the empty marker pair (the two ctypes calls)."""
        spans, empty = super().instructions(counts), sorted(counts.between(EMPTY_BEGIN, EMPTY_END))
        if not empty:
            raise PeerError(f"{self.name}: the guest wrote no empty marker pair")
        return [span - empty[(len(empty) - 1) // 2] for span in spans]

    def inspect(self, report: dict[str, Any], stderr: str) -> dict[str, Any]:
        if report["options"]["use_int8_inference"] != self.int8 or report["options"]["use_fp16_storage"]:
            raise PeerError(f"{self.name}: ncnn ran with options {report['options']}")
        if self.scales is not None:
            report["calibration"] = (calibration.describe(self.network) +
                                     ": 99.99th-percentile ranges of each convolution input, symmetric int8")
            report["tolerance"] = calibration.INT8_TOLERANCE
        return report


class NcnnInt8Peer(NcnnPeer):
    name = "ncnn_int8"
    int8 = True
