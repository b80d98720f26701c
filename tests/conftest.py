"""Shared fixtures: building engines through SCons (the user's command) and running them under the target's
qemu-user (qemu-arm for armv7, the default; qemu-aarch64 for aarch64): the helpers take `target=`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from neoncc.targets import toolchain  # noqa: E402

ARMV7 = toolchain.load("armv7")
DEFAULT_TARGET = "armv7"


def scons(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["scons", "-Q", *args], cwd=ROOT, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"scons {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def build(model: Path, build_dir: Path, weights: Path | None = None, *extra: str,
          target: str = DEFAULT_TARGET) -> Path:
    """Builds like a user would (extra: more SCons variables, e.g. layout=nhwc); returns the engine binary."""
    args = [f"target={target}", f"model={model}", f"build_dir={build_dir}", *extra]
    if weights:
        args.append(f"weights={weights}")
    scons(*args)
    name = Path(model).stem + ("-int8" if "precision=int8" in extra else "")
    return build_dir / target / name / Path(model).stem


def run_engine(binary: Path, *args: str, check: bool = True, target: str = DEFAULT_TARGET) -> subprocess.CompletedProcess:
    proc = subprocess.run([*toolchain.load(target).runner(), str(binary), *args], capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"engine failed ({proc.returncode}): {proc.stderr}")
    return proc


def infer(binary: Path, tensor: np.ndarray, workdir: Path, *args: str,
          target: str = DEFAULT_TARGET) -> tuple[np.ndarray, dict]:
    """One inference: writes the input, runs the engine with --json, returns (probabilities, report)."""
    source, result = workdir / "input.f32", workdir / "output.f32"
    tensor.astype("<f4").tofile(source)
    proc = run_engine(binary, "--input", str(source), "--output", str(result), "--json", *args, target=target)
    return np.fromfile(result, dtype="<f4"), json.loads(proc.stdout)


@pytest.fixture(scope="session", autouse=True)
def shared_build_cache(tmp_path_factory):
    """Every build of the session shares one SCons CacheDir, and compiles on every core: set through SCONSFLAGS,
    SCons' own variable for arguments every `scons` command line gets, so the builds deploy.py, bench and neoncc
    run under test share it too. The runtime objects then compile once per target and flags, not once per test's
    build folder (a fresh build: 48 s, one from the cache: 1 s); a test that passes cache= itself still gets its
    own. Only identical work is shared: SConstruct keys the cache by the inputs' contents, the command and the file
    name (the manifest's source paths among the compile step's inputs)."""
    cache = tmp_path_factory.mktemp("scons-cache")
    flags = " ".join(filter(None, [os.environ.get("SCONSFLAGS", ""), f"-j{os.cpu_count() or 1}", f"cache={cache}"]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCONSFLAGS", flags)
        yield cache


@pytest.fixture(scope="session")
def sample_input() -> np.ndarray:
    """An input on the scale of a Caffe-preprocessed photo (pixels minus mean)."""
    return np.random.default_rng(7).normal(0.0, 60.0, (1, 3, 227, 227)).astype(np.float32)


@pytest.fixture(scope="session")
def models_board(tmp_path_factory) -> Path:
    """A board file for the emulated board, booted once for the tests that run models on it; always stopped."""
    from deploy import testing
    path = testing.board_file(tmp_path_factory.mktemp("models-board"), "pytest-models")
    with testing.running_board(path):
        yield path


def on_terminal(command: list[str], timeout: float = 600) -> tuple[int, str, str]:
    """Run a command with its stderr on a pseudo-terminal of 100 columns (a new one is 0 wide, which hides
    progress bars); returns its exit status, everything the terminal showed, and its stdout."""
    import fcntl
    import pty
    import struct
    import tempfile
    import termios
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with tempfile.TemporaryFile() as stdout:  # a file, not a pipe: nothing blocks while the terminal is read
        proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=stdout, stderr=follower)
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not chunk:
                break
            seen += chunk
        os.close(leader)
        status = proc.wait(timeout=timeout)
        stdout.seek(0)
        return status, seen.decode(errors="replace"), stdout.read().decode(errors="replace")
