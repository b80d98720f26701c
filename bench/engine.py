"""Our engine as a benchmark subject: built through SCons like a user builds it, then counted under qemu-user
with its per-inference and per-layer markers (runtime/main.cpp places them)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.insncount import count, target_options
from neoncc import PROJECT_ROOT
from neoncc.errors import UserError
from neoncc.targets import toolchain

INFERENCE_BEGIN, INFERENCE_END = 0x10000, 0x10001  # runtime/main.cpp's marker ids; layer i is marker i


def build(model: Path, build_dir: Path, weights: Path | None = None, tuning: str | Path = "",
          target: str | None = None, calibration: Path | None = None) -> Path:
    """Builds like `scons target=... model=...` (default: the default target), 8-bit (`precision=int8`) when given
    a calibration folder; returns the engine binary."""
    target = target or toolchain.default_target()
    command = [sys.executable, "-m", "SCons", "-Q", f"target={target}", f"model={Path(model).resolve()}",
               f"build_dir={Path(build_dir).resolve()}", f"tuning={tuning}"]
    if weights:
        command.append(f"weights={Path(weights).resolve()}")
    if calibration:
        command += ["precision=int8", f"calibration={Path(calibration).resolve()}"]
    proc = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"build of {Path(model).stem} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    name = Path(model).stem
    precision = "int8" if calibration else "float32"
    return toolchain.build_dir(Path(build_dir).resolve(), target, name, precision) / name


@dataclass
class EngineCount:
    """Guest instructions of one inference, in all and per layer (engine layer names). With several threads,
    per_inference and per_layer count every thread's instructions; critical_path is the sum over layers of the
    busiest thread's (the threads meet at each layer's end), and per_layer_threads splits each layer by guest thread
    (vCPU index; 0 is the thread that runs the network). Single-threaded, critical_path == per_inference."""

    per_inference: int
    per_layer: dict[str, int]
    groups: dict[str, int]
    output: np.ndarray
    report: dict  # the engine's --json report (emulated times, memory)
    critical_path: int = 0
    per_layer_threads: dict[str, list[int]] = field(default_factory=dict)


def count_engine(binary: Path, input_path: Path, threads: int = 1, target: str | None = None) -> EngineCount:
    """Counts one inference of a binary built for target (default: the default target) under its qemu-user."""
    output = Path(str(input_path) + f".{Path(binary).name}.out")
    result = count([str(binary), "--input", str(input_path), "--output", str(output), "--threads", str(threads),
                    "--runs", "1", "--warmup", "0", "--json"], **target_options(target))
    return _engine_count(result, output)


def _engine_count(result, output: Path) -> EngineCount:
    report = json.loads(result.stdout)
    (per_inference,) = result.between(INFERENCE_BEGIN, INFERENCE_END, all_vcpus=True)
    (critical_path,) = result.critical_path(INFERENCE_BEGIN, INFERENCE_END)
    by_layer = result.by_start(all_vcpus=True)
    per_layer = {layer["name"]: by_layer.get(i, 0) for i, layer in enumerate(report["layers"])}
    threads: dict[int, list[int]] = {}
    for region in result.regions():   # one inference: each layer marker starts one region
        if 0 <= region.start < len(report["layers"]) and region.vcpu == 0:
            threads[region.start] = list(region.threads)
    per_layer_threads = {layer["name"]: threads.get(i, []) for i, layer in enumerate(report["layers"])}
    groups: dict[str, int] = {}
    for layer in report["layers"]:
        groups[layer["group"]] = groups.get(layer["group"], 0) + per_layer[layer["name"]]
    probabilities = np.fromfile(output, "<f4")
    output.unlink()
    return EngineCount(per_inference, per_layer, groups, probabilities, report, critical_path, per_layer_threads)


COUNT_DIR = "/tmp"  # counted runs happen in /tmp/neoncc-count-XXXXXXXX/: the same path length on every host


def count_files(name: str, binary: bytes, weights: bytes, inputs: bytes, threads: int = 1,
                target: str | None = None) -> EngineCount:
    """count_engine for an engine given by its contents: written to a fresh directory of fixed path length and run
    from there with relative paths, so the count is the same on whichever host (a Dask worker) runs it."""
    work = Path(tempfile.mkdtemp(prefix="neoncc-count-", dir=COUNT_DIR))
    try:
        (work / name).write_bytes(binary)
        (work / name).chmod(0o755)
        (work / f"{name}.weights").write_bytes(weights)
        (work / "input.f32").write_bytes(inputs)
        result = count([f"./{name}", "--input", "input.f32", "--output", "output.f32", "--threads", str(threads),
                        "--runs", "1", "--warmup", "0", "--json"], cwd=work, **target_options(target))
        return _engine_count(result, work / "output.f32")
    finally:
        shutil.rmtree(work, ignore_errors=True)
