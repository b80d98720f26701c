"""A running emulated board: one qemu-system process per board name (the board's target's board_image.qemu_system:
qemu-system-arm, qemu-system-aarch64), on a loopback port picked at start.

State lives in .cache/board/<name>/: qemu.pid, port, console.log (the board's serial console, kept for
diagnosis; the previous boot's is console.prev.log) and qemu.log (qemu's own messages).
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tqdm import tqdm

from deploy import BOARD_CACHE, image, known_hosts
from deploy.errors import DeployError

BUSY_WAIT_S = 60


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (qemu binds it a moment later; start() retries on a clash)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssh_banner(port: int, timeout: float = 2.0) -> bool:
    """True once an SSH server answers: qemu's user network accepts TCP before the guest listens."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


class Instance:
    """The qemu process of one emulated board."""

    def __init__(self, board):
        self.board = board
        self.dir = BOARD_CACHE / board.name
        self.pidfile = self.dir / "qemu.pid"
        self.portfile = self.dir / "port"
        self.console = self.dir / "console.log"
        self.qemu_log = self.dir / "qemu.log"

    @property
    def qemu(self) -> str:
        """The board's emulator: its target's board_image.qemu_system."""
        from neoncc.targets import toolchain
        return toolchain.load(image.Arch.of(self.board).target).spec["board_image"]["qemu_system"]

    def pid(self) -> int | None:
        """The pid of this board's qemu if it is alive (a stale pid file, or a reused pid, gives None)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\x00")
        except (OSError, ValueError):
            return None
        return pid if str(self.pidfile).encode() in cmdline else None

    def port(self) -> int | None:
        if self.pid() is None:
            return None
        try:
            return int(self.portfile.read_text())
        except (OSError, ValueError):
            return None

    def command(self, img: image.Image, port: int) -> list[str]:
        emu = self.board.emulator
        append = ["console=ttyAMA0", "panic=-1", f"neoncc.data_mb={emu.get('data_mb', 256)}"]
        if emu.get("boot_cores"):
            append.append(f"maxcpus={emu['boot_cores']}")
        return [
            self.qemu, "-M", emu["machine"], "-cpu", emu["cpu"], "-smp", str(self.board.cores),
            "-m", str(emu["memory_mb"]), "-kernel", str(img.kernel), "-initrd", str(img.initrd),
            "-append", " ".join(append), "-nodefaults", "-no-reboot", "-display", "none",
            "-serial", f"file:{self.console}",
            # restrict=on: the board reaches nothing outside; only the forwarded SSH port comes in.
            "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-device,netdev=net0", "-device", "virtio-rng-device",
            "-daemonize", "-pidfile", str(self.pidfile),
        ]

    def start(self, log=print, progress: bool = True) -> int:
        """Boot the board unless it runs already; returns once SSH answers. Returns the SSH port.

        A lock file serialises starts, so two deploys at once share one board instead of booting two.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            port = self.port()
            # A running board that is slow to answer (a busy host) is waited for, never rebooted under the feet
            # of the deploys using it: only a board whose SSH stays silent for BUSY_WAIT_S is restarted.
            deadline = time.monotonic() + BUSY_WAIT_S
            while port is not None and self.pid() is not None:
                if ssh_banner(port, timeout=5.0):
                    return port
                if time.monotonic() > deadline:
                    log(f"board {self.board.name}: its SSH has not answered for {BUSY_WAIT_S} s; restarting it")
                    break
                time.sleep(1.0)
            return self._boot(log, progress)

    def _boot(self, log, progress: bool) -> int:
        self.stop()  # a qemu whose SSH does not answer (hung, or half-booted by a killed start)
        img = image.ensure(self.board, log=log)
        known_hosts.pin(self.board.known_hosts, self.board.host_key_alias or self.board.name, img.host_public_key)
        if self.console.exists():
            self.console.replace(self.dir / "console.prev.log")
        for _attempt in range(3):
            port = free_port()
            with open(self.qemu_log, "w") as qlog:
                started = subprocess.run(self.command(img, port), stdout=qlog, stderr=subprocess.STDOUT).returncode == 0
            # Another process may take the port between free_port() and qemu: that clash is worth a retry.
            if started or "host forwarding" not in self.qemu_log.read_text():
                break
        if not started:
            raise DeployError(f"board {self.board.name}: {self.qemu} failed to start:\n{self.qemu_log.read_text().strip()}")
        self.portfile.write_text(f"{port}\n")
        self._wait_for_ssh(port, log, progress)
        return port

    def _wait_for_ssh(self, port: int, log, progress: bool) -> None:
        timeout = self.board.emulator.get("boot_timeout_s", 180)
        started = time.monotonic()
        with tqdm(total=None, desc=f"board {self.board.name}: booting", unit="s", disable=not progress,
                  bar_format="{desc} {elapsed}", leave=False) as bar:
            while not ssh_banner(port):
                if self.pid() is None:
                    raise DeployError(f"board {self.board.name}: qemu exited during boot; console log "
                                      f"{self.console}:\n{self.console_tail()}")
                if time.monotonic() - started > timeout:
                    self.stop()
                    raise DeployError(f"board {self.board.name}: no SSH answer within {timeout:.0f} s; "
                                      f"console log {self.console}:\n{self.console_tail()}")
                time.sleep(0.5)
                bar.update(0)
                bar.refresh()
        log(f"board {self.board.name}: up on 127.0.0.1:{port} after {time.monotonic() - started:.1f} s")

    def console_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.console.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no console log)"

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the board's qemu (SIGTERM, then SIGKILL); True when one was running."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            self.portfile.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() == pid and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.pid() == pid:
            os.kill(pid, signal.SIGKILL)
            while self.pid() == pid:
                time.sleep(0.1)
        self.pidfile.unlink(missing_ok=True)
        self.portfile.unlink(missing_ok=True)
        return True
