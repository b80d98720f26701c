"""The roots the dynamically linked peers run in (qemu-arm -L, qemu-aarch64 -L), and the downloads that fill them.

Debian's armhf python3.11 + python3-numpy (for the tflite-runtime wheel) and OpenCV 4.6 DNN with its headers are
unpacked from .deb files through the project's private apt state (neoncc.targets.debian), as the ACL sysroot is,
but into a root of their own under .cache/peers: the engine's sysroot stays exactly what its toolchain file
lists. Package lists are explicit rather than apt's dependency closure, which would drag in Mesa and LLVM through
TBB's optional hwloc binding; check_libraries() proves the lists complete by following every ELF NEEDED entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from neoncc import PROJECT_ROOT
from neoncc.errors import UserError
from neoncc.targets import debian
from neoncc.targets.toolchain import APT_STATE

CACHE = PROJECT_ROOT / ".cache" / "peers"
DEBS = CACHE / "debs"
WHEELS = CACHE / "wheels"
# Debian architecture -> (GNU triplet of its library directories, cross readelf that reads its ELF files).
TRIPLETS = {"armhf": "arm-linux-gnueabihf", "arm64": "aarch64-linux-gnu"}
# Debian selects BLAS/LAPACK through update-alternatives, a maintainer script that dpkg -x does not run.
ALTERNATIVES = ("blas/libblas.so.3", "lapack/liblapack.so.3")

Log = Callable[[str], None]


def log_stderr(message: str) -> None:
    print(f"peers: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def locked(name: str):
    """Hold an exclusive lock under the cache, so parallel set-ups (test workers, two shells) do not race."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@dataclass(frozen=True)
class Root:
    """A root of Debian packages of one architecture from one release (None: the host's, bookworm), unpacked
    under .cache/peers for peers run with `qemu-<arch> -L root`: armhf/bookworm for the armv7 peers, trixie for
    newer libraries (ONNX Runtime, ACL 24.11), arm64 for the aarch64 target."""
    arch: str
    suite: str | None = None

    @property
    def name(self) -> str:
        return "-".join(filter(None, ["sysroot", self.suite, self.arch]))

    @property
    def path(self) -> Path:
        return CACHE / self.name

    @property
    def lib_dirs(self) -> list[str]:
        triplet = TRIPLETS[self.arch]
        return [f"lib/{triplet}", f"usr/lib/{triplet}"]

    def ensure(self, packages: Iterable[str], log: Log = log_stderr) -> Path:
        """Unpack the packages not yet in the root; returns the root. A package once unpacked stays at its
        version (no apt query on later calls), so a set-up that is done costs one JSON read."""
        wanted = list(dict.fromkeys(packages))
        stamp = self.path / ".packages.json"
        with locked(self.name):
            present = json.loads(stamp.read_text()) if stamp.is_file() else {}
            missing = [p for p in wanted if p not in present]
            if not missing:
                return self.path
            log(f"unpacking Debian {self.suite or 'bookworm'} {self.arch} packages into "
                f"{self.path.relative_to(PROJECT_ROOT)}: {' '.join(missing)}")
            apt = debian.PrivateApt(APT_STATE / "-".join(filter(None, [self.suite, self.arch])), self.arch,
                                    self.suite)
            if self.suite and not any((apt.state_dir / "lists").glob("*_Packages*")):
                apt.update()
            versions = _versions(apt, missing)
            debs = [_download(apt, package, version) for package, version in versions.items()]
            debian.extract(debs, self.path)
            for directory in self.lib_dirs[1:]:
                for target in ALTERNATIVES:
                    path = self.path / directory / Path(target).name
                    if (path.parent / target).exists() and not path.exists():
                        path.symlink_to(target)
            present.update(versions)
            stamp.write_text(json.dumps(present, indent=1, sort_keys=True))
        return self.path

    def check_libraries(self, binaries: Iterable[Path]) -> None:
        """Every shared library the binaries need, transitively, exists in the root; else name what is missing,
        so a Debian dependency change shows up at set-up time instead of as a loader error under qemu. A
        binary's RUNPATH entries under $ORIGIN (a wheel's libraries beside its extension modules) count too."""
        todo, seen, missing = list(binaries), set(), {}
        while todo:
            binary = todo.pop()
            needed, origin_dirs = self._needed(binary)
            for library in needed:
                if library in seen:
                    continue
                seen.add(library)
                dirs = [*origin_dirs, *(self.path / d for d in self.lib_dirs)]
                path = next((d / library for d in dirs if (d / library).exists()), None)
                if path is None:
                    missing.setdefault(library, binary.name)
                else:
                    todo.append(path)
        if missing:
            listed = ", ".join(f"{lib} (needed by {by})" for lib, by in sorted(missing.items()))
            raise UserError(f"the peers' {self.arch} root {self.path} lacks {listed}: add the Debian package that "
                            f"ships it to the peer's package list")

    def _needed(self, binary: Path) -> tuple[list[str], list[Path]]:
        """The binary's NEEDED libraries and the existing directories its $ORIGIN-relative RUNPATH/RPATH names."""
        readelf = f"{TRIPLETS[self.arch]}-readelf"
        proc = subprocess.run([readelf, "-d", str(binary)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"{readelf} -d {binary} failed: {proc.stderr.strip()}")
        paths = [entry for found in re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.+)\]", proc.stdout)
                 for entry in found.split(":") if entry.startswith("$ORIGIN")]
        origin_dirs = [Path(binary.parent, entry.replace("$ORIGIN", ".", 1)).resolve() for entry in paths]
        return (re.findall(r"\(NEEDED\)\s+Shared library: \[(.+)\]", proc.stdout),
                [d for d in origin_dirs if d.is_dir()])


ARMHF = Root("armhf")     # the armv7 peers' root (Debian bookworm armhf)


def _versions(apt: debian.PrivateApt, packages: list[str]) -> dict[str, str]:
    """Candidate versions, refreshing the private package lists once if they lack a package (a fresh clone's
    lists are the ACL sysroot's, fetched by scripts/setup; they may predate a security update)."""
    try:
        return {p: apt.version(p) for p in packages}
    except UserError:
        apt.update()
        return {p: apt.version(p) for p in packages}


def _download(apt: debian.PrivateApt, package: str, version: str) -> Path:
    """The .deb of package=version in DEBS, fetched unless present. apt-get names files with an epoch
    `name_1%3a1.2_arch.deb`, so both spellings are looked for."""
    DEBS.mkdir(parents=True, exist_ok=True)
    plain = version.split(":")[-1]
    patterns = [f"{package}_{plain}_{apt.arch}.deb", f"{package}_{version.replace(':', '%3a')}_{apt.arch}.deb",
                f"{package}_{plain}_all.deb", f"{package}_{version.replace(':', '%3a')}_all.deb"]

    def found() -> list[Path]:
        return sorted({path for pattern in patterns for path in DEBS.glob(pattern)})

    if not found():
        proc = subprocess.run(["apt-get", *apt._options(), "-q", "download", f"{package}={version}"], cwd=DEBS,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"apt-get download {package}={version} ({apt.arch}) failed:\n{proc.stderr.strip()}")
    debs = found()
    if len(debs) != 1:
        raise UserError(f"expected one .deb for {package}={version} in {DEBS}, found {debs or 'none'}")
    return debs[0]


def pip_download(requirement: str, machine: str, python_version: str, glibc_minor: int = 36) -> Path:
    """A binary wheel for another machine (armv7l, aarch64) from PyPI, into WHEELS (kept: later calls find it
    without pip): any manylinux wheel whose glibc is at most 2.<glibc_minor> (Debian 12's 2.36 runs them all; pip
    matches each manylinux tag exactly, so every one is asked for). Wheels of one release for several machines sit
    side by side: the file name's last tag tells them apart."""
    name, _, version = requirement.partition("==")
    pattern = f"{name.replace('-', '_')}-{version}-*{machine}.whl"
    found = sorted(WHEELS.glob(pattern))
    if not found:
        WHEELS.mkdir(parents=True, exist_ok=True)
        platforms = [arg for minor in range(glibc_minor, 16, -1) for arg in ("--platform",
                                                                              f"manylinux_2_{minor}_{machine}")]
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", *platforms, "--python-version", python_version, "-d", str(WHEELS),
             requirement], capture_output=True, text=True)
        found = sorted(WHEELS.glob(pattern))
        if proc.returncode != 0 or not found:
            raise UserError(f"pip download {requirement} for manylinux {machine} (glibc <= 2.{glibc_minor}) "
                            f"failed:\n{proc.stderr.strip()}")
    return found[-1]
