"""On the board: check it can take the bundle, then run the engine under `supervise` and collect the result."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import re

import numpy as np
from tqdm import tqdm

from deploy.bundle import Bundle, Remote
from deploy.errors import DeployError
from deploy.ssh import Connection, quote
from neoncc.targets.toolchain import Toolchain, elf_machine

# One round trip; every line is plain POSIX/busybox, so a wrong board (an x86 PC, say) answers it too. The last line
# is /proc/cpuinfo's first `Features` line (ARM kernels' CPU flags; empty where there is none).
PROBE = ("uname -m; grep -c '^processor' /proc/cpuinfo; "
         "sed -n 's/^MemAvailable: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo; "
         "sed -n 's/^Features[[:space:]]*: *//p' /proc/cpuinfo | head -n 1")
DISK_MARGIN = 1 << 20  # SHA256SUMS, links, the run's output
PROGRESS = re.compile(r"neoncc-progress (\d+) (\d+)")


@dataclass
class BoardInfo:
    arch: str
    cores: int
    cpu_features: list[str]   # the target's required features, all found on the board
    mem_available_kb: int
    disk_free_kb: int = 0


def check_executables(board_name: str, bundle: Bundle, target: Toolchain) -> None:
    """Every executable of the bundle must be built for the target's ELF machine: a binary of another architecture
    is refused here, by name, before anything is uploaded."""
    for file in bundle.files:
        if file.executable:
            machine = elf_machine(file.path)
            if machine != target.spec["elf_machine"]:
                raise DeployError(f"board {board_name}: {file.name} ({file.path}) is an {machine} executable, but "
                                  f"the board runs {target.name} ({target.spec['elf_machine']}); nothing was uploaded")


def preflight(conn: Connection, remote: Remote, bundle: Bundle, target: Toolchain) -> BoardInfo:
    """Refuse a board that cannot run the bundle, before anything is written to it: its `uname -m` must be the
    board file's arch, /proc/cpuinfo must list the target's cpu_features (toolchains/<target>.yaml: `neon` on
    armv7, `asimd` on aarch64), the bundle's executables must be the target's ELF machine."""
    board = conn.board
    lines = conn.run(PROBE).stdout.split("\n")
    try:
        arch, cores, mem_kb = lines[0].strip(), int(lines[1]), int(lines[2])
    except (IndexError, ValueError):
        raise DeployError(f"board {board.name}: could not read its architecture, CPU and memory "
                          f"(got {lines!r})") from None
    features = lines[3].split() if len(lines) > 3 else []
    if arch != board.arch:
        raise DeployError(f"board {board.name}: wrong architecture: {conn.where} says `uname -m` = {arch}, "
                          f"the bundle needs {board.arch} ({board.source})")
    missing = [f for f in target.spec["cpu_features"] if f not in features]
    if missing:
        raise DeployError(f"board {board.name}: missing CPU features: /proc/cpuinfo on {conn.where} does not list "
                          f"{', '.join(f'`{f}`' for f in missing)} (its Features: {' '.join(features) or 'none'}), "
                          f"which the {target.name} engine needs (toolchains/{target.name}.yaml cpu_features)")
    check_executables(board.name, bundle, target)
    info = BoardInfo(arch=arch, cores=cores, cpu_features=list(target.spec["cpu_features"]), mem_available_kb=mem_kb)
    if info.mem_available_kb < board.min_free_memory_mb * 1024:
        raise DeployError(f"board {board.name}: not enough free memory: {info.mem_available_kb // 1024} MB "
                          f"available, {board.min_free_memory_mb} MB needed (min_free_memory_mb)")
    remote.prepare()
    free = remote.free_bytes()
    info.disk_free_kb = free // 1024
    needed = sum(f.size for f in remote.missing(bundle)) + DISK_MARGIN
    if free < needed:
        raise DeployError(f"board {board.name}: disk full: {remote.root} has {free / 2**20:.1f} MiB free, the "
                          f"upload needs {needed / 2**20:.1f} MiB")
    return info


@dataclass
class RunResult:
    engine: dict       # what the engine printed with --json
    stats: dict        # what supervise measured
    output: np.ndarray  # the engine's output tensor (float32)


class _Lines:
    """Reassemble streamed chunks into lines, handing each complete one on."""

    def __init__(self, emit, on_progress=None):
        self.emit, self.on_progress, self.buffer, self.all = emit, on_progress, b"", []

    def __call__(self, chunk: bytes) -> None:
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        text = line.decode(errors="replace").rstrip()
        progress = PROGRESS.fullmatch(text) if self.on_progress else None
        if progress:  # the engine's `neoncc-progress DONE TOTAL` (--progress): a bar, not a log line
            self.on_progress(int(progress[1]), int(progress[2]))
            return
        self.all.append(text)
        self.emit(text)

    def flush(self) -> None:
        if self.buffer:
            self._line(self.buffer)
            self.buffer = b""


def run(conn: Connection, remote: Remote, bundle: Bundle, engine_args: list[str], timeout_s: float,
        log=print, progress: bool = False) -> RunResult:
    """Run the bundle's engine from this deploy's own run directory; its output is streamed (board: ...) as
    it comes.

    supervise enforces timeout_s on the board and kills the whole process tree past it, or as soon as this SSH
    session is gone; the host waits a little longer for the connection itself, so a hung board is an error
    too, not a hang. Before the engine starts, the board prints the run directory's token, the bundle id and
    the SHA-256 of the engine, weights and input it is about to run; the host checks them against what it sent,
    so a result is never reported for files it did not send.
    """
    model = bundle.model
    rundir = remote.rundir
    limit = max(1, math.ceil(timeout_s))
    names = [model, model + ".weights", "input.f32"]
    command = (f"cd {quote(rundir)} && echo $$ > supervise.pid && echo neoncc-run {quote(remote.token, bundle.id)} "
               f"&& sha256sum {quote(*names)} && echo neoncc-run-start && "
               f"exec ./supervise {limit} stats.json ./{quote(model)} "
               f"--weights {quote(model + '.weights')} --input input.f32 --output output.f32 "
               + quote(*engine_args) + " --json --progress")
    bar = tqdm(desc=f"run on {conn.board.name}", unit="run", disable=not progress, leave=False)

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    stdout = _Lines(lambda line: None)  # the engine's --json result; shown through the summary
    stderr = _Lines(lambda line: log(f"board: {line}"), on_progress=advance)
    try:
        status = conn.stream(command, stdout, stderr, timeout=limit + 30)
    except KeyboardInterrupt:
        if conn.transport.is_active():  # supervise also stops the engine by itself once the session is gone
            conn.run(f"kill -TERM $(cat {quote(rundir + '/supervise.pid')})", check=False, timeout=5)
        raise
    finally:
        bar.close()
    stdout.flush()
    stderr.flush()
    board = conn.board.name
    _check_header(board, model, remote.token, bundle, names, stdout.all)
    stats = _read_json(conn, rundir + "/stats.json")
    last_error = next((line for line in reversed(stderr.all) if line.strip()), "")
    if stats is None:
        raise DeployError(f"board {board}: could not run {model} (status {status})"
                          + (f": {last_error}" if last_error else ""))
    if stats["timed_out"]:
        raise DeployError(f"board {board}: {model} ran past its {limit} s time limit; its process tree on the "
                          "board was killed")
    if stats["signal"]:
        raise DeployError(f"board {board}: {model} crashed: killed by signal SIG{stats['signal_name']} "
                          f"({stats['signal']})" + (f"; last output: {last_error}" if last_error else ""))
    if stats["exit_code"] != 0:
        raise DeployError(f"board {board}: {model} failed with exit status {stats['exit_code']}"
                          + (f": {last_error}" if last_error else ""))
    engine_lines = stdout.all[stdout.all.index("neoncc-run-start") + 1:]
    engine = _last_json_object("\n".join(engine_lines))
    if engine is None:
        raise DeployError(f"board {board}: {model} exited 0 but printed no JSON result")
    buffer = io.BytesIO()
    conn.sftp.getfo(rundir + "/output.f32", buffer)
    return RunResult(engine, stats, np.frombuffer(buffer.getvalue(), dtype="<f4"))


def _check_header(board: str, model: str, token: str, bundle: Bundle, names: list[str], lines: list[str]) -> None:
    """The run's own account of what it ran must be what this deploy sent; anything else is an error."""
    expected = {f.name: f.sha256 for f in bundle.files}
    if "neoncc-run-start" not in lines:
        return  # the command failed before the engine started; the stats say why
    header = lines[:lines.index("neoncc-run-start")]
    ran = {}
    for line in header[1:]:
        digest, _, name = line.partition("  ")
        ran[name] = digest
    problems = []
    if not header or header[0].split()[1:] != [token, bundle.id]:
        problems.append(f"it reports run {header[0] if header else '(nothing)'!r}, not {token} of bundle {bundle.id}")
    problems += [f"{name} has SHA-256 {ran.get(name, '(none)')[:16]}..., this deploy sent {expected[name][:16]}..."
                 for name in names if ran.get(name) != expected[name]]
    if problems:
        raise DeployError(f"board {board}: {model} ran other files than this deploy sent ({'; '.join(problems)}); "
                          "its result is not reported")


def _last_json_object(text: str) -> dict | None:
    """The last JSON object in the text that starts a line (it may span many lines)."""
    decoder = json.JSONDecoder()
    starts = [i for i, c in enumerate(text) if c == "{" and (i == 0 or text[i - 1] == "\n")]
    for start in reversed(starts):
        try:
            value, _end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _read_json(conn: Connection, path: str) -> dict | None:
    try:
        with conn.sftp.open(path) as f:
            return json.loads(f.read())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
