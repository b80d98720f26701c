"""Executed guest instructions of ARM programs under qemu-user: the project's primary cost metric.

Wall time under emulation varies by a few per cent run to run and ranks NEON code wrongly (qemu emulates scalar
code far faster per instruction than NEON code); the number of executed guest instructions is exact and, with a
fixed environment, identical run to run. A QEMU TCG plugin of ours (bench/qemu_plugin/insn_count.c) counts them,
in total and at markers the guest places with insn_marker(id) from bench/qemu_plugin/insn_marker.h.

    from bench.insncount import count
    result = count(["build/engine", "--runs", "3"])        # the default target's sysroot, qemu and -cpu
    result = count([...], **target_options("aarch64"))      # another target's (toolchains/aarch64.yaml)
    result.total                                            # all instructions of the process
    result.between(100, 101)                                # per inference: [n1, n2, n3]
    result.by_start()                                       # per layer: {layer id: instructions}
    result.threads_between(100, 101)                        # per inference, each guest thread's instructions
    result.critical_path(100, 101)                          # per inference, the sum over its marked regions of
                                                            # the busiest thread's instructions

    python3 -m bench.insncount build                        # fetch the QEMU header, build the plugin
    python3 -m bench.insncount [--target T] [--sysroot DIR] [--json] -- ./prog args

The plugin is built once for the host and loads into any qemu-user (qemu-arm, qemu-aarch64): which emulator, -cpu
and -L a target's programs run under come from its toolchain file (qemu_user, qemu_cpu, sysroot).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from neoncc import PROJECT_ROOT
from neoncc.errors import UserError, exit_status
from neoncc.targets import toolchain

PLUGIN_SOURCE_DIR = Path(__file__).resolve().parent / "qemu_plugin"
CACHE_DIR = PROJECT_ROOT / ".cache" / "insncount"
_TARGET = toolchain.load(toolchain.default_target())
DEFAULT_SYSROOT = _TARGET.sysroot
DEFAULT_QEMU = _TARGET.spec["qemu_user"]
QEMU_PACKAGE = "qemu-user"
# The boards' core (the target file's qemu_cpu). qemu-user's default (`max`) has more hardware capabilities, and libc
# and ACL choose code paths by them: ACL's set-up alone differs by ~0.8 M instructions between the two.
DEFAULT_CPU = _TARGET.spec["qemu_cpu"]
CFLAGS = ["-O2", "-std=gnu11", "-shared", "-fPIC", "-pthread", "-Wall", "-Wextra", "-Werror"]


def target_options(target: str | None = None) -> dict:
    """count()'s sysroot, cpu and qemu for a target's programs, from its toolchain file (default: the default
    target's, which are also count()'s defaults)."""
    spec = toolchain.load(target or toolchain.default_target())
    return {"sysroot": spec.sysroot, "cpu": spec.spec.get("qemu_cpu"), "qemu": spec.spec["qemu_user"]}


class CountError(UserError):
    """The guest failed, or the plugin wrote no total (the guest died from a signal)."""


@dataclass(frozen=True)
class Marker:
    """One insn_marker(id) call: instructions executed up to and including its `svc`."""

    id: int
    vcpu: int
    insns: int   # by the calling vCPU (guest thread) so far
    total: int   # by all vCPUs at that moment; equals insns for single-threaded guests
    at: tuple[int, ...] = ()   # every vCPU's count at that moment, by vCPU index (sums to total)


def _deltas(later: Marker, earlier: Marker) -> tuple[int, ...]:
    """Each vCPU's instructions between two markers (a vCPU created meanwhile started from 0)."""
    return tuple(n - (earlier.at[v] if v < len(earlier.at) else 0) for v, n in enumerate(later.at))


@dataclass(frozen=True)
class Region:
    """From one marker of a vCPU to its next marker: that vCPU's instructions, and all vCPUs' meanwhile."""

    start: int
    end: int
    vcpu: int
    insns: int
    all_insns: int   # includes worker threads (a multi-threaded engine's layer); equals insns single-threaded
    threads: tuple[int, ...] = ()   # each vCPU's share of all_insns, by vCPU index

    @property
    def critical(self) -> int:
        """The busiest guest thread's instructions in the region: its length when the threads run in parallel and
        meet at its end (a layer run by a thread pool)."""
        return max(self.threads, default=self.insns)


@dataclass(frozen=True)
class Result:
    total: int
    markers: tuple[Marker, ...] = ()
    vcpus: Mapping[int, int] = field(default_factory=dict)   # vCPU index -> instructions
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""

    def regions(self) -> list[Region]:
        """Consecutive markers of each vCPU, as regions in the order their end markers were recorded."""
        last: dict[int, Marker] = {}
        regions = []
        for marker in self.markers:
            prev = last.get(marker.vcpu)
            if prev is not None:
                regions.append(Region(prev.id, marker.id, marker.vcpu, marker.insns - prev.insns,
                                      marker.total - prev.total, _deltas(marker, prev)))
            last[marker.vcpu] = marker
        return regions

    def between(self, start: int, end: int, all_vcpus: bool = False) -> list[int]:
        """Instructions from each `start` marker to the next `end` marker of the same vCPU (other markers may lie
        between, e.g. per-layer ones inside an inference). One number per occurrence, in order. all_vcpus counts
        every guest thread's instructions in that interval, not only the marking thread's."""
        open_at: dict[int, Marker] = {}
        spans = []
        for marker in self.markers:
            if marker.id == end and marker.vcpu in open_at:
                begin = open_at.pop(marker.vcpu)
                spans.append(marker.total - begin.total if all_vcpus else marker.insns - begin.insns)
            if marker.id == start:
                open_at[marker.vcpu] = marker
        return spans

    def threads_between(self, start: int, end: int) -> list[tuple[int, ...]]:
        """Like between(start, end, all_vcpus=True), split by guest thread: per occurrence, each vCPU's
        instructions in that interval (index order; idle threads show 0)."""
        open_at: dict[int, Marker] = {}
        spans = []
        for marker in self.markers:
            if marker.id == end and marker.vcpu in open_at:
                spans.append(_deltas(marker, open_at.pop(marker.vcpu)))
            if marker.id == start:
                open_at[marker.vcpu] = marker
        return spans

    def critical_path(self, start: int, end: int) -> list[int]:
        """Per occurrence of start..end (one vCPU's), the sum over the regions that vCPU marked in between of the
        busiest thread's instructions in each: the instructions of the longest chain when threads run in parallel
        and meet at every marker (a thread pool finishing each layer before the next). One thread: between()."""
        inside: dict[int, int] = {}
        spans = []
        for region in self.regions():
            if region.start == start:
                inside[region.vcpu] = 0
            if region.vcpu in inside:
                inside[region.vcpu] += region.critical
                if region.end == end:
                    spans.append(inside.pop(region.vcpu))
        return spans

    def by_start(self, all_vcpus: bool = False) -> dict[int, int]:
        """Instructions of all regions, summed by the id of the marker that starts them (e.g. per layer)."""
        sums: dict[int, int] = {}
        for region in self.regions():
            sums[region.start] = sums.get(region.start, 0) + (region.all_insns if all_vcpus else region.insns)
        return sums


def parse_output(text: str) -> tuple[int, tuple[Marker, ...], dict[int, int]]:
    """Parse the plugin's outfile (format in insn_count.c); a missing total means the guest did not exit."""
    lines = text.splitlines()
    if not lines or lines[0] != "insn_count 1":
        raise CountError("the insn_count plugin wrote no output: the guest died before exiting (signal?)")
    total = None
    markers = []
    vcpus: dict[int, int] = {}
    for line in lines[1:]:
        kind, *values = line.split()
        if kind == "marker":
            markers.append(Marker(*map(int, values)))
        elif kind == "at" and markers:
            last = markers[-1]
            markers[-1] = Marker(last.id, last.vcpu, last.insns, last.total, tuple(map(int, values)))
        elif kind == "vcpu" and values[0] != "overflow":
            vcpus[int(values[0])] = int(values[1])
        elif kind == "total":
            total = int(values[0])
        elif kind == "error":
            raise CountError(f"insn_count plugin: {' '.join(values)}")
    if total is None:
        raise CountError("the insn_count plugin output has no total: the guest did not exit normally")
    return total, tuple(markers), vcpus


def _cache_lock(name: str):
    """An exclusive lock file under the cache, so concurrent builds (parallel tests) do not race."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    handle = open(CACHE_DIR / f"{name}.lock", "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def qemu_plugin_header() -> Path:
    """qemu-plugin.h of the installed qemu-user's exact source version, fetched once from Debian's sources."""
    from bench.debsrc import SourceApt, installed_source_version

    source, version = installed_source_version(QEMU_PACKAGE)
    header = CACHE_DIR / f"qemu-{version.split(':')[-1]}" / "qemu-plugin.h"
    if header.is_file():
        return header
    with _cache_lock("header"):
        if not header.is_file():
            apt = SourceApt(CACHE_DIR / "apt-src")
            apt.extract_file(source, version, "include/qemu/qemu-plugin.h", header.with_suffix(".tmp"))
            header.with_suffix(".tmp").replace(header)
    return header


def build() -> Path:
    """The plugin .so, compiled with the host's gcc unless a build of the same inputs is cached.

    The file name carries a hash of the sources, the QEMU header and the flags, so a stale build is never used
    and a cached one costs one hash.
    """
    header = qemu_plugin_header()
    inputs = [PLUGIN_SOURCE_DIR / "insn_count.c", PLUGIN_SOURCE_DIR / "insn_marker.h", header]
    digest = hashlib.sha256(" ".join(CFLAGS).encode())
    for path in inputs:
        digest.update(path.read_bytes())
    plugin = CACHE_DIR / f"insn_count-{digest.hexdigest()[:16]}.so"
    if plugin.is_file():
        return plugin
    with _cache_lock("build"):
        if not plugin.is_file():
            partial = plugin.with_name(plugin.name + ".partial")
            cmd = ["gcc", *CFLAGS, f"-I{header.parent}", f"-I{PLUGIN_SOURCE_DIR}", "-o", str(partial),
                   str(inputs[0])]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(f"building the insn_count plugin failed:\n{' '.join(cmd)}\n{proc.stderr}")
            partial.replace(plugin)
            for old in CACHE_DIR.glob("insn_count-*.so"):
                if old != plugin:
                    old.unlink()
    return plugin


def qemu_command(cmd: Sequence[str | os.PathLike], outfile: Path, sysroot: Path | None = DEFAULT_SYSROOT,
                 cpu: str | None = DEFAULT_CPU, qemu: str = DEFAULT_QEMU) -> list[str]:
    """The qemu-user command line that runs cmd with the counting plugin writing to outfile."""
    qemu_path = shutil.which(qemu)
    if qemu_path is None:
        raise UserError(f"{qemu} not found (scripts/setup installs qemu-user)")
    # -seed fixes the guest's AT_RANDOM bytes and getrandom(): nothing random then feeds the instruction stream.
    args = [qemu_path, "-seed", "1"]
    if cpu:
        args += ["-cpu", cpu]
    if sysroot is not None and (sysroot != DEFAULT_SYSROOT or sysroot.is_dir()):
        args += ["-L", str(sysroot)]
    escaped = str(outfile).replace(",", ",,")   # QemuOpts syntax: a literal comma is doubled
    args += ["-plugin", f"{build()},outfile={escaped}"]
    return args + [os.fspath(part) for part in cmd]


def count(cmd: Sequence[str | os.PathLike], sysroot: Path | None = DEFAULT_SYSROOT,
          env: Mapping[str, str] | None = None, *, cpu: str | None = DEFAULT_CPU, cwd: Path | None = None,
          timeout: float | None = None, check: bool = True, qemu: str = DEFAULT_QEMU) -> Result:
    """Run cmd (an ARM program and its arguments) under qemu-user and count its guest instructions.

    The guest gets exactly `env` (empty by default, like `env -i`): environment size and contents shift the stack
    and change what libc does, so counts are comparable only under the same environment, arguments and program
    path. sysroot is qemu's -L (the default target's sysroot by default, used when it exists; None for none:
    static programs need none; an explicitly given one must exist). cpu is qemu's -cpu (the default target's qemu_cpu, the boards' Cortex-A7; None
    for qemu's own default): hardware capabilities change code paths and so counts. qemu is the emulator
    (another target's: target_options()).
    With check, a non-zero exit status raises CountError; stdout/stderr are captured in the Result.
    """
    with tempfile.TemporaryDirectory(prefix="insncount-") as tmp:
        outfile = Path(tmp) / "counts.txt"
        args = qemu_command(cmd, outfile, sysroot=sysroot, cpu=cpu, qemu=qemu)
        proc = subprocess.run(args, env=dict(env or {}), cwd=cwd, timeout=timeout, capture_output=True,
                              text=True, errors="replace")
        if check and proc.returncode != 0:
            raise CountError(f"{' '.join(args)}\nexited with status {proc.returncode}:\n{proc.stderr[-2000:]}")
        text = outfile.read_text() if outfile.is_file() else ""
    try:
        total, markers, vcpus = parse_output(text)
    except CountError as error:
        raise CountError(f"{error}\n{' '.join(args)} exited with status {proc.returncode}:\n"
                         f"{proc.stderr[-2000:]}") from None
    return Result(total, markers, vcpus, proc.returncode, proc.stdout, proc.stderr)


def _print_result(result: Result) -> None:
    print(f"total {result.total}")
    threaded = len(result.vcpus) > 1
    if threaded:
        for vcpu, insns in sorted(result.vcpus.items()):
            print(f"vcpu {vcpu} {insns}")
    regions = result.regions()
    if regions:
        print(f"{'from':>10} {'to':>10} {'vcpu':>4} {'instructions':>14} {'all vcpus':>14}"
              + (f" {'busiest vcpu':>14}  per vcpu" if threaded else ""))
        for region in regions:
            print(f"{region.start:>10} {region.end:>10} {region.vcpu:>4} {region.insns:>14} {region.all_insns:>14}"
                  + (f" {region.critical:>14}  {' '.join(map(str, region.threads))}" if threaded else ""))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["build"]:
        return exit_status(lambda: print(build()))
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.insncount",
        description="Count executed guest instructions of an ARM program under qemu-user "
                    "(`build` alone builds the plugin and prints its path).")
    parser.add_argument("--target", default=None,
                        help="whose qemu-user, -cpu and sysroot (a file toolchains/<target>.yaml; default: "
                             f"{toolchain.default_target()})")
    parser.add_argument("--sysroot", type=Path, default=None,
                        help="qemu -L library root (default: the target's sysroot)")
    parser.add_argument("--no-sysroot", action="store_true", help="run without -L (static programs)")
    parser.add_argument("--cpu", default=None, help="qemu -cpu model (default: the target's qemu_cpu)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="guest environment variable (the environment is otherwise empty)")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- program and arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no program given (python3 -m bench.insncount -- ./prog args)")
    env = dict(item.split("=", 1) for item in args.env)

    def run() -> int:
        options = target_options(args.target)
        sysroot = None if args.no_sysroot else (args.sysroot or options["sysroot"])
        result = count(command, sysroot, env, cpu=args.cpu or options["cpu"], check=False, qemu=options["qemu"])
        sys.stderr.write(result.stdout + result.stderr)   # the guest's output; stdout carries only the counts
        if args.json:
            print(json.dumps({**asdict(result), "regions": [asdict(r) for r in result.regions()],
                              "stdout": None, "stderr": None}, indent=1))
        else:
            _print_result(result)
        return result.returncode
    return exit_status(run)


if __name__ == "__main__":
    sys.exit(main())
