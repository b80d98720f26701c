"""Helpers the board and deploy tests share: board files derived from the emulated one, a board instance that
is always stopped afterwards, deploy.py as a user runs it, and a real SSH server of another architecture.

Nothing here fakes SSH: the tests talk to the emulated board and to a dropbear server on this host.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from deploy import boards, vm
from neoncc import PROJECT_ROOT


def board_file(directory: Path, name: str, emulated: bool = True, template: str = boards.DEFAULT_BOARD,
               **fields) -> Path:
    """A board file like configs/boards/<template>.yaml (emulated.yaml by default) with some fields replaced
    (emulator fields under `emulator`); emulated=False drops the emulator section, making it a 'real' board at a
    fixed port."""
    spec = yaml.safe_load((boards.BOARD_DIR / f"{template}.yaml").read_text())
    spec.update(name=name, host_key_alias=f"neoncc-{name}", known_hosts=str(directory / "known_hosts"))
    emulator = {**spec.pop("emulator"), **fields.pop("emulator", {})}
    if emulated:
        spec["emulator"] = emulator
    else:
        spec.pop("host_key_alias")
    spec.update(fields)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@contextlib.contextmanager
def running_board(path: Path):
    """Boot the emulated board of a board file; always stop it, so no qemu outlives the tests."""
    instance = vm.Instance(boards.load(str(path)))
    try:
        instance.start(log=lambda message: None, progress=False)
        yield instance
    finally:
        instance.stop()


def deploy(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run deploy.py as a user would, from the project directory. Without --weights (or --no-build) it asks for
    the seeded random weights explicitly: a build an earlier test left with trained weights must not change (or
    refuse) what a test runs."""
    if not {"--weights", "--no-build", "--random-weights", "--help"} & set(args):
        args = (*args, "--random-weights")
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "deploy.py"), *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def deploy_json(*args: str, timeout: float = 300) -> dict:
    """deploy.py --json as a user runs it, which must succeed; its parsed result."""
    proc = deploy(*args, "--json", timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The single `error:` line a failing deploy.py prints."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, f"expected one error line, got:\n{proc.stderr}"
    return errors[0]


@contextlib.contextmanager
def host_ssh_server(directory: Path, authorized_key: str, port: int):
    """A real SSH server that is not an ARM board: Debian's dropbear on this x86_64 host, on 127.0.0.1 only.

    dropbear reads authorized_keys from the user's home, so it runs in a private mount namespace where
    /etc/passwd gives root a home inside `directory`; the host's own files are never touched.
    """
    dropbear = shutil.which("dropbear") or "/usr/sbin/dropbear"
    if not Path(dropbear).exists() or not shutil.which("dropbearkey") or not shutil.which("unshare"):
        raise RuntimeError("the host SSH server needs dropbear-bin and unshare (scripts/apt-packages.txt)")
    home = directory / "home"
    (home / ".ssh").mkdir(parents=True)
    os.chmod(home, 0o700)
    os.chmod(home / ".ssh", 0o700)
    (home / ".ssh" / "authorized_keys").write_text(authorized_key + "\n")
    os.chmod(home / ".ssh" / "authorized_keys", 0o600)
    subprocess.run(["dropbearkey", "-t", "ed25519", "-f", str(directory / "host_key")], check=True,
                   capture_output=True)
    root = pwd.getpwuid(0)
    (directory / "passwd").write_text(f"root:x:0:0:root:{home}:{root.pw_shell or '/bin/sh'}\n")
    script = (f"mount --bind {directory / 'passwd'} /etc/passwd && exec {dropbear} -F -E -s -j -k "
              f"-p 127.0.0.1:{port} -r {directory / 'host_key'}")
    log = open(directory / "dropbear.log", "w")
    server = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not vm.ssh_banner(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"host dropbear did not start: {(directory / 'dropbear.log').read_text()}")
            time.sleep(0.1)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
