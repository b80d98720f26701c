"""Debian's python3.11 + python3-numpy in a peers' root, per target, and binary wheels unpacked beside it.

Peers shipped as CPython wheels (tflite-runtime for armv7l, ai-edge-litert and ncnn for aarch64) run their guest
script with Debian bookworm's python3.11 under qemu-user -L root; the wheel is not installed into the root but
unzipped into a directory of its own under .cache/peers that the guest script puts on sys.path. One package list
serves both architectures (the names are the same in armhf and arm64).

    root = python_root.ensure("aarch64")                                  # Debian arm64 python3.11 + numpy
    site = python_root.wheel_site("ai-edge-litert==1.4.0", "aarch64")     # the unzipped wheel
    python_root.check("aarch64", [*site.glob("ai_edge_litert/*.so")])     # every NEEDED library in the root
    command = [python_root.interpreter("aarch64"), "guest.py", "--site", site, ...]
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path

from bench.peers import sysroot
from neoncc.errors import UserError

# Our target -> the Debian root its peers run in.
ROOTS = {"armv7": sysroot.ARMHF, "aarch64": sysroot.Root("arm64")}
# Our target -> the machine name of its manylinux wheels (bookworm's glibc 2.36 runs any manylinux_2_x, x <= 36).
MACHINES = {"armv7": "armv7l", "aarch64": "aarch64"}
PYTHON_VERSION = "311"                 # Debian 12's python3.11
PYTHON = "usr/bin/python3.11"
# The interpreter, numpy and what their shared objects and _ctypes need (check() proves the list complete).
PACKAGES = ["libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libexpat1", "libffi8", "libbz2-1.0", "liblzma5",
            "libpython3.11-minimal", "python3.11-minimal", "libpython3.11-stdlib", "python3-numpy", "libblas3",
            "liblapack3", "libgfortran5"]


def root_of(target: str) -> sysroot.Root:
    if target not in ROOTS:
        raise UserError(f"no Debian Python root for target {target} (known: {', '.join(ROOTS)})")
    return ROOTS[target]


def ensure(target: str, log: sysroot.Log = sysroot.log_stderr) -> Path:
    """The target's root with Debian's python3.11 and numpy unpacked (idempotent); returns its path."""
    return root_of(target).ensure(PACKAGES, log)


def interpreter(target: str) -> Path:
    return root_of(target).path / PYTHON


def wheel_site(requirement: str, target: str, log: sysroot.Log = sysroot.log_stderr,
               marker: str | None = None) -> Path:
    """The wheel of requirement ("name==version") for target's platform, unzipped into
    .cache/peers/<name>-<version>-<target> (once: marker, a path inside the wheel, tells whether it is done;
    default the package's directory)."""
    name, _, version = requirement.partition("==")
    if not version:
        raise UserError(f"wheel_site wants a pinned requirement name==version, got {requirement!r}")
    root_of(target)
    site = sysroot.CACHE / f"{name}-{version}-{target}"
    marker = marker or name.replace("-", "_")
    with sysroot.locked(site.name):
        if not (site / marker).exists():
            wheel = sysroot.pip_download(requirement, MACHINES[target], PYTHON_VERSION)
            log(f"unpacking {wheel.name}")
            staging = site.with_name(site.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(staging)
            if not (staging / marker).exists():
                shutil.rmtree(staging, ignore_errors=True)
                raise UserError(f"{wheel.name} has no {marker}: not the wheel expected for {requirement}")
            shutil.rmtree(site, ignore_errors=True)
            staging.rename(site)
    return site


def check(target: str, binaries: Iterable[Path] = ()) -> None:
    """Every shared library that the interpreter, numpy, _ctypes and the given binaries (a wheel's extension
    modules) need, transitively, is in the target's root."""
    root = root_of(target)
    numpy_core = root.path / "usr/lib/python3/dist-packages/numpy/core"
    root.check_libraries([root.path / PYTHON, *numpy_core.glob("*.so"), *binaries,
                          *(root.path / "usr/lib/python3.11/lib-dynload").glob("_ctypes.*.so")])
