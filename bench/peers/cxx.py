"""Cross-building the C++ peer programs with a target's toolchain file (same compiler and flags as our engine;
the default target unless a peer is prepared for another), cached under a hash of everything that goes into them so a rebuild happens exactly when needed."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench import insncount
from bench.peers.base import PeerError
from bench.peers.sysroot import CACHE, Log, locked
from neoncc.targets import toolchain

PEERS_DIR = Path(__file__).resolve().parent
BIN = CACHE / "bin"


def build(name: str, source: Path, compile_flags: Sequence[str], link_flags: Sequence[str], log: Log,
          target: str | None = None) -> Path:
    """The ARM binary of one peer's main.cpp for target (default: the default target), with peer_cli.h and
    insn_marker.h on the include path."""
    target = toolchain.load(target or toolchain.default_target())
    if target.name != toolchain.default_target():
        name = f"{name}-{target.name}"   # each target's binary is cached on its own
    spec = target.spec
    command = [target.cxx, *spec["arch_flags"], *spec["cxxflags"], f"-I{PEERS_DIR}",
               f"-I{insncount.PLUGIN_SOURCE_DIR}", *compile_flags, str(source), *spec["linkflags"], *link_flags]
    digest = hashlib.sha256("\0".join(command).encode())
    for path in (source, PEERS_DIR / "peer_cli.h", insncount.PLUGIN_SOURCE_DIR / "insn_marker.h"):
        digest.update(path.read_bytes())
    binary = BIN / f"{name}-{digest.hexdigest()[:16]}"
    if binary.is_file():
        return binary
    with locked(f"build-{name}"):
        if binary.is_file():
            return binary
        BIN.mkdir(parents=True, exist_ok=True)
        partial = binary.with_name(binary.name + ".partial")
        log(f"building {name} ({target.cxx})")
        proc = subprocess.run([*command, "-o", str(partial)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise PeerError(f"building the {name} peer failed:\n{' '.join(command)}\n{proc.stderr[-4000:]}")
        partial.replace(binary)
        for old in BIN.glob(f"{name}-" + "?" * 16):   # this name's stale builds only (not another target's)
            if old != binary:
                old.unlink()
    return binary



def header_links(name: str, headers: Iterable[Path]) -> Path:
    """A directory under the peers' cache with links to just these headers (files or directories) of a root, for
    -isystem: the root's other headers (its C library's) stay out of the compiler's view. The links are relative,
    so the shared cache stays valid whichever work tree made them; missing headers are skipped."""
    directory = CACHE / name
    with locked(name):
        directory.mkdir(parents=True, exist_ok=True)
        for header in headers:
            if not header.exists():
                continue
            link, target = directory / header.name, os.path.relpath(header, directory)
            if link.is_symlink() and os.readlink(link) == target:
                continue
            if link.is_symlink():
                link.unlink()
            link.symlink_to(target)
    return directory
