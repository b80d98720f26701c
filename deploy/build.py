"""The host side of a deploy: build the engine through SCons, prepare its input, and make the bundle.

The engine (build/<target>/<model>/<model>, static) and its weights come from the compiler's SConstruct; the
bundle adds the input tensor and `supervise`, a small static helper that runs the engine on the board under
a time limit and measures it (the board has nothing of its own to do that with).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy import CACHE
from deploy.bundle import Bundle, File
from deploy.errors import DeployError
from neoncc import PROJECT_ROOT
from neoncc.errors import UserError
from neoncc.pipeline import content_sha256
from neoncc.targets import toolchain
from neoncc.tools.preprocess import image_to_tensor, write_tensor

TARGET = toolchain.default_target()  # the toolchain file marked default; a board's own: target_of(board)
MODEL_DIR = PROJECT_ROOT / "configs" / "models"
SUPERVISE_SRC = Path(__file__).with_name("supervise.c")
INPUTS = CACHE / "deploy" / "inputs"
WORK = CACHE / "deploy" / "work"          # one private directory per deploy: its snapshot of the build
BUILD_LOCK = PROJECT_ROOT / "build" / ".deploy-build.lock"


@contextlib.contextmanager
def build_lock():
    """One SCons build at a time in build/ (deploys at once would overwrite each other's outputs and SCons'
    own database); taken around the build and the snapshot of what it wrote."""
    BUILD_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(BUILD_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@dataclass
class Engine:
    """A built model: the engine binary, its weights and its manifest."""

    model: str
    yaml: Path
    dir: Path
    manifest: dict

    @property
    def binary(self) -> Path:
        return self.dir / self.model

    @property
    def weights(self) -> Path:
        return self.dir / f"{self.model}.weights"

    @property
    def input_shape(self) -> list[int]:
        return list(self.manifest.get("input_shape", [3, 227, 227]))

    @property
    def weights_random(self) -> bool:
        return bool(self.manifest.get("weights_random", False))

    def labels(self) -> list[str] | None:
        """Class names, one a line, when the model has them (the manifest's `labels`)."""
        path = self.manifest.get("labels")
        if not path:
            return None
        path = Path(path) if Path(path).is_absolute() else PROJECT_ROOT / path
        if not path.is_file():
            raise DeployError(f"{self.dir / (self.model + '.json')}: labels file {path} does not exist")
        return [line.strip() for line in path.read_text().splitlines()]


def target_of(board) -> str:
    """The target a board runs: the toolchain file whose uname_machine lists the board file's arch."""
    try:
        return toolchain.for_machine(board.arch, f"{board.source}: arch").name
    except UserError as err:
        raise DeployError(str(err)) from None


def model_yaml(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = MODEL_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in MODEL_DIR.glob("*.yaml"))) or "none"
        raise DeployError(f"unknown model '{name_or_path}': no file {path} (known models: {known})")
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", path.stem):
        raise DeployError(f"model file {path}: its name '{path.stem}' names the engine and its files on the board; "
                          "use only letters, digits and _ . + - in it")
    return path.resolve()


def _project_relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path.resolve())


MAX_WEIGHTS_BYTES = 1 << 30


def check_weights_file(path: Path) -> None:
    """A .npz's arrays are read from their headers first: every member a plain numeric .npy whose header does
    not claim more data than the archive holds (so a forged header cannot make the build allocate TiBs)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DeployError(f"weights file {path}: not a NumPy .npz archive ({err})") from None
    total = 0
    with archive:
        for info in archive.infolist():
            where = f"weights file {path}: member {info.filename}"
            if not info.filename.endswith(".npy"):
                raise DeployError(f"{where}: not a .npy array")
            try:
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _fortran, dtype = read(member)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
                raise DeployError(f"{where}: not a readable .npy array ({err})") from None
            if dtype.hasobject or dtype.kind not in "fiu":
                raise DeployError(f"{where}: holds {dtype} data; weights are plain numbers (float32)")
            claimed = math.prod(shape) * dtype.itemsize
            if claimed > info.file_size:
                raise DeployError(f"{where}: its header claims {list(shape)} {dtype} ({claimed:,} bytes) but it "
                                  f"holds {info.file_size:,} bytes")
            total += claimed
    if total > MAX_WEIGHTS_BYTES:
        raise DeployError(f"weights file {path}: {total:,} bytes of arrays, more than {MAX_WEIGHTS_BYTES:,}")


def _previous_weights(yaml_path: Path, precision: str, target: str = TARGET) -> Path | None:
    """The trained weights the model's current build was made with (by `scons ... weights=W` or an earlier
    deploy), when it has some: deploying without --weights runs those, never random ones over them. Refused in
    one line when that file is gone or changed since."""
    try:
        manifest = existing_engine(yaml_path, precision, target=target).manifest
    except DeployError:
        return None  # no complete build yet
    if manifest.get("weights_random", True) or not manifest.get("weights"):
        return None
    path = Path(manifest["weights"])
    where = f"build/{target}/{yaml_path.stem}{'-int8' if precision == 'int8' else ''}"
    if not path.is_file() or content_sha256(path) != manifest.get("weights_sha256"):
        state = "no longer exists" if not path.is_file() else "has changed since"
        raise DeployError(f"{where} was built with the weights {path}, which {state}; give --weights FILE "
                          "(or --random-weights) to say which weights to run")
    return path


def check_build(engine: Engine, weights: Path | None, calibration: Path | None = None) -> None:
    """--no-build: the engine in build/ must be the one the options name (its weights and calibration by
    content), or deploying it is refused in one line."""
    manifest, where = engine.manifest, engine.dir / f"{engine.model}.json"
    if weights is not None:
        if not weights.is_file():
            raise DeployError(f"weights file {weights} does not exist")
        if manifest.get("weights_sha256") != content_sha256(weights):
            built = "random weights" if manifest.get("weights_random") else f"the weights {manifest.get('weights')}"
            raise DeployError(f"{where}: this build has {built}, not {weights}; deploy without --no-build to "
                              "rebuild with them")
    if calibration is not None:
        recorded = (manifest.get("calibration") or {}).get("sha256")
        if recorded != content_sha256(calibration):
            raise DeployError(f"{where}: this build was not calibrated on {calibration}; deploy without --no-build "
                              "to recalibrate")


def build_engine(yaml_path: Path, weights: Path | None = None, log=print, precision: str = "float32",
                 calibration: Path | None = None, random_weights: bool = False,
                 snapshot: Path | None = None, target: str = TARGET) -> Engine:
    """Run SCons for the model (for target, a file in toolchains/) (it rebuilds only what changed) and check what it promised to write. Without
    `weights` the build keeps the trained weights it was made with (random_weights=True replaces them).

    With snapshot (a directory), the engine, weights and manifest are copied there before another build can
    replace them, and the Engine returned is that copy: what a deploy bundles is what its own build wrote."""
    model = yaml_path.stem
    if weights is None and not random_weights:
        weights = _previous_weights(yaml_path, precision, target)
        if weights is not None:
            log(f"build: {model} keeps the weights it was built with: {weights}")
    scons = shutil.which("scons")
    command = [scons] if scons else [sys.executable, "-m", "SCons"]
    command += ["-Q", f"-j{os.cpu_count() or 1}", f"target={target}", f"model={_project_relative(yaml_path)}"]
    if weights is not None:
        if not weights.is_file():
            raise DeployError(f"weights file {weights} does not exist")
        check_weights_file(weights)
        command.append(f"weights={weights.resolve()}")
    if precision == "int8":
        if calibration is None or not calibration.is_dir():
            raise DeployError(f"calibration folder {calibration} does not exist")
        command += ["precision=int8", f"calibration={calibration.resolve()}"]
    log(f"build: {model} ({' '.join(command[1:])})")
    logger = logging.getLogger("neoncc.build")
    with build_lock():
        proc = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, "NEONCC_BUILD_LOCKED": "1"})
        lines = []
        for line in proc.stdout:  # the compiler's own lines: shown with -v, or when the build fails
            lines.append(line.rstrip())
            logger.debug(f"build: {lines[-1]}")
        if proc.wait() != 0:
            if not logger.isEnabledFor(logging.DEBUG):
                for line in lines[-40:]:
                    logger.warning(f"build: {line}")
            raise DeployError(f"build of {model} failed (`{' '.join(command)}` exited with {proc.returncode})")
        engine = _snapshot(existing_engine(yaml_path, precision, locked=True, target=target), snapshot)
    # What the build says it was made from must be what this deploy asked for.
    if weights is not None and engine.manifest.get("weights_sha256") != content_sha256(weights):
        raise DeployError(f"the build of {model} in {engine.dir} was made from other weights than {weights} "
                          "(another build changed build/ meanwhile); rerun")
    if weights is None and not engine.weights_random:
        raise DeployError(f"the build of {model} holds trained weights, not the seeded random ones asked for "
                          "(another build changed build/ meanwhile); rerun")
    return engine


def _snapshot(engine: Engine, directory: Path | None) -> Engine:
    if directory is None:
        return engine
    directory.mkdir(parents=True, exist_ok=True)
    for path in (engine.binary, engine.weights, engine.dir / f"{engine.model}.json"):
        shutil.copy2(path, directory / path.name)
    return Engine(engine.model, engine.yaml, directory, engine.manifest)


@contextlib.contextmanager
def workdir():
    """A private directory for one deploy on this host (its snapshot of the build); removed afterwards."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=WORK))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def existing_engine(yaml_path: Path, precision: str = "float32", snapshot: Path | None = None,
                    locked: bool = False, target: str = TARGET) -> Engine:
    """The engine build/ holds for the model (8-bit ones in build/<target>/<model>-int8/), checked to be
    complete (and copied to snapshot, when given, while no build can change it)."""
    if not locked:
        with build_lock():
            return _snapshot(existing_engine(yaml_path, precision, locked=True, target=target), snapshot)
    model = yaml_path.stem
    out = toolchain.build_dir(PROJECT_ROOT / "build", target, model, precision)
    manifest_path = out / f"{model}.json"
    for path in (out / model, out / f"{model}.weights", manifest_path):
        if not path.is_file():
            raise DeployError(f"no {path}: the build of {model} did not write it")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise DeployError(f"{manifest_path}: not valid JSON ({err})") from None
    return Engine(model, yaml_path, out, manifest)


def build_supervise(target: str = TARGET) -> Path:
    """Cross-compile supervise.c (static) when it changed; the result sits in build/deploy/<target>/."""
    spec = toolchain.load(target).spec
    out = PROJECT_ROOT / "build" / "deploy" / target / "supervise"
    stamp = out.with_name("supervise.sha256")
    source_hash = hashlib.sha256(SUPERVISE_SRC.read_bytes() + repr(spec["arch_flags"]).encode()).hexdigest()
    if out.is_file() and stamp.is_file() and stamp.read_text().strip() == source_hash:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"supervise.{os.getpid()}.tmp")
    command = [spec["compiler_prefix"] + "gcc", *spec["arch_flags"], "-O2", "-static", "-Wall", "-Wextra",
               "-Werror", "-o", str(tmp), str(SUPERVISE_SRC)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DeployError(f"compiling {SUPERVISE_SRC} failed:\n{proc.stderr.strip()}")
    tmp.replace(out)
    stamp_tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
    stamp_tmp.write_text(source_hash + "\n")
    stamp_tmp.replace(stamp)
    return out


def prepare_input(engine: Engine, image: Path | None = None, tensor: Path | None = None, log=print) -> Path:
    """The input tensor file: a photo preprocessed as the model's YAML says, a given .f32, or a seeded random
    tensor when neither is given (said plainly, since its top-5 means nothing)."""
    expected = 4 * int(np.prod(engine.input_shape))
    if tensor is not None:
        if not tensor.is_file():
            raise DeployError(f"input file {tensor} does not exist")
        size = tensor.stat().st_size
        if size == 0 or size % expected:  # a whole number of inputs: the engine runs them as a batch
            raise DeployError(f"input file {tensor} has {size} bytes; {engine.model} takes float32 "
                              f"{'x'.join(map(str, engine.input_shape))} inputs of {expected} bytes each")
        return tensor
    if image is not None:
        if not image.is_file():
            raise DeployError(f"image {image} does not exist")
        digest = hashlib.sha256(image.read_bytes() + engine.yaml.read_bytes()).hexdigest()[:16]
        out = INPUTS / f"{engine.model}-{digest}.f32"
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            write_tensor(image_to_tensor(engine.yaml, image), out)  # neoncc's preprocessing, written atomically
        return out
    out = INPUTS / f"{engine.model}-random-seed0.f32"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        write_tensor(np.random.default_rng(0).standard_normal(engine.input_shape, dtype=np.float32), out)
    log("input: no --image or --input given; using a seeded random tensor")
    return out


def make_bundle(engine: Engine, input_path: Path, target: str = TARGET) -> Bundle:
    return Bundle(engine.model, [
        File(engine.model, engine.binary, executable=True),
        File(f"{engine.model}.weights", engine.weights),
        File("input.f32", input_path),
        File("supervise", build_supervise(target), executable=True),
    ])
