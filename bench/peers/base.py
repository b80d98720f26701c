"""What every peer engine offers, and running one peer program under its target's qemu-user (qemu-arm for armv7,
qemu-aarch64 for aarch64) with or without counting.

A peer program (a C++ binary, or a guest Python script) is given one input tensor and runs `warmup` untimed
inferences, then `runs` timed ones, each bracketed by insn_marker(INFERENCE_BEGIN/END) (the ids our engine uses),
writes the last output as raw float32 and prints one JSON object {"times_ms": [...], ...} on stdout. The counted
span between the markers is the peer's cost per inference; set-up (model load, weight packing) lies outside it.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import insncount
from bench.peers.network import Network
from neoncc.errors import UserError
from neoncc.targets import toolchain

INFERENCE_BEGIN = 0x10000   # runtime/main.cpp's kInferenceBegin / kInferenceEnd
INFERENCE_END = 0x10001
TIMEOUT = 3600           # seconds for one guest run: SqueezeNet v1.0 takes about a minute
TOLERANCE = 1e-4            # how close a peer's probabilities must be to our engine's before it is measured


class PeerError(UserError):
    """A peer failed to set up, to run, or to agree with the reference output."""


@dataclass(frozen=True)
class PeerResult:
    probabilities: np.ndarray              # the network's output (float32, flattened) for the last run
    instructions_per_inference: int | None  # guest instructions between the markers (median of the runs)
    wall_ms: list[float]                   # emulated wall time of each timed run
    instructions: list[int] = field(default_factory=list)   # per timed run
    details: dict[str, Any] = field(default_factory=dict)   # peer-specific facts (delegate, backend, ...)


class Peer:
    """A network prepared for one peer engine in a work directory; run() measures it on one input file."""

    name = ""
    sysroot: Path | None = None   # qemu -L for dynamically linked peers; None for static programs
    features: frozenset[str] = frozenset()   # network extensions it runs (bench.peers.network.EXTENSIONS)

    def __init__(self, network: Network, workdir: Path, target: str | None = None):
        self.target = target or toolchain.default_target()   # whose compiler, qemu-user and -cpu
        self.network = network
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    def command(self, input_path: Path, output_path: Path, runs: int, warmup: int) -> list[str]:
        """The guest command line: an ARM program and its arguments."""
        raise NotImplementedError

    def instructions(self, counts: insncount.Result) -> list[int]:
        """Instructions of each timed inference, from the counted run."""
        return counts.between(INFERENCE_BEGIN, INFERENCE_END)

    def inspect(self, report: dict[str, Any], stderr: str) -> dict[str, Any]:
        """Check the program's report (e.g. that a delegate really ran) and return the facts worth keeping."""
        return report

    def run(self, input_f32: str | Path, runs: int = 3, warmup: int = 1, count: bool = True) -> PeerResult:
        """Run warmup + runs inferences on one NCHW float32 input under the target's qemu-user and -cpu (armv7:
        qemu-arm -cpu cortex-a7), one thread.

        count=True runs under the instruction-counting plugin (a few per cent slower); count=False gives plain
        emulated wall times and no instruction counts."""
        if runs < 1 or warmup < 0:
            raise PeerError(f"{self.name}: runs must be >= 1 and warmup >= 0 (got {runs}, {warmup})")
        input_f32 = Path(input_f32).resolve()
        expected = int(np.prod(self.network.input_shape)) * 4
        if not input_f32.is_file() or input_f32.stat().st_size != expected:
            size = f"{input_f32.stat().st_size} bytes" if input_f32.is_file() else "no file"
            raise PeerError(f"{input_f32}: want one float32 tensor {list(self.network.input_shape)} "
                            f"({expected} bytes), got {size}")
        with tempfile.TemporaryDirectory(prefix=f"peer-{self.name}-") as tmp:
            output = Path(tmp) / "output.f32"
            command = self.command(input_f32, output, runs, warmup)
            stdout, stderr, counts = run_guest(command, self.sysroot, count, self.name, self.target)
            probabilities = np.fromfile(output, dtype="<f4") if output.is_file() else np.empty(0, np.float32)
        if probabilities.size != self.network.output_size:
            raise PeerError(f"{self.name}: wrote {probabilities.size} output values, the network has "
                            f"{self.network.output_size}")
        details = self.inspect(_parse_report(stdout, self.name), stderr)
        times = [float(t) for t in details.pop("times_ms")]
        spans: list[int] = []
        if counts is not None:
            spans = self.instructions(counts)
            if len(spans) != runs:
                raise PeerError(f"{self.name}: {len(spans)} marked inferences for {runs} runs")
            details["guest_threads"] = len(counts.vcpus) or 1
            details["instructions_all_threads"] = counts.between(INFERENCE_BEGIN, INFERENCE_END, all_vcpus=True)
        return PeerResult(probabilities, statistics.median_low(spans) if spans else None, times, spans, details)


def run_guest(command: list[str], sysroot: Path | None, count: bool, what: str,
              target: str | None = None) -> tuple[str, str, insncount.Result | None]:
    """Run an ARM program of target (default: the default target) with an empty environment (counts repeat only
    under a fixed one); returns its stdout, stderr and, with count, the counting plugin's result."""
    options = insncount.target_options(target)
    if count:
        try:
            result = insncount.count(command, sysroot, {}, timeout=TIMEOUT, cpu=options["cpu"], qemu=options["qemu"])
        except insncount.CountError as error:
            raise PeerError(f"{what}: {error}") from None
        return result.stdout, result.stderr, result
    qemu = shutil.which(options["qemu"])
    if qemu is None:
        raise PeerError(f"{options['qemu']} not found (scripts/setup installs qemu-user)")
    args = [qemu, "-seed", "1", "-cpu", options["cpu"], *(["-L", str(sysroot)] if sysroot else []),
            *map(os.fspath, command)]
    proc = subprocess.run(args, env={}, capture_output=True, text=True, errors="replace", timeout=TIMEOUT)
    if proc.returncode != 0:
        raise PeerError(f"{what}: {' '.join(args)}\nexited with status {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc.stdout, proc.stderr, None


def _parse_report(stdout: str, what: str) -> dict[str, Any]:
    """The peer program's last stdout line: a JSON object with at least times_ms."""
    lines = stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
        if not isinstance(report.get("times_ms"), list):
            raise ValueError("no times_ms")
    except (IndexError, ValueError, AttributeError) as error:
        raise PeerError(f"{what}: unreadable report ({error}):\n{stdout[-2000:]}") from None
    return report


def check_agreement(name: str, probabilities: np.ndarray, reference: np.ndarray,
                    tolerance: float = TOLERANCE) -> float:
    """Max absolute difference to the reference output; raises PeerError beyond the tolerance, so a peer that
    computes something else is never measured."""
    reference = np.asarray(reference, np.float32).ravel()
    if probabilities.shape != reference.shape:
        raise PeerError(f"{name}: output has {probabilities.size} values, the reference {reference.size}")
    difference = float(np.max(np.abs(probabilities - reference)))
    if not difference <= tolerance:
        worst = int(np.argmax(np.abs(probabilities - reference)))
        raise PeerError(f"{name}: output differs from the reference by {difference:.3g} (> {tolerance:g}) at "
                        f"index {worst}: {probabilities[worst]:.6g} vs {reference[worst]:.6g}")
    return difference
