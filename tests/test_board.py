"""The emulated Zuluko-class board itself: what it is once booted, how it is managed, and board files.

Every test here boots real qemu-system-arm instances and talks to them over real SSH (paramiko).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import boards, known_hosts, testing, vm
from deploy.errors import DeployError
from deploy.ssh import Connection
from neoncc import PROJECT_ROOT


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    path = testing.board_file(tmp_path_factory.mktemp("board"), "pytest-board")
    with testing.running_board(path) as instance:
        yield boards.load(str(path)), instance


def test_board_is_a_zuluko_class_armv7_neon_board_with_4_cores_and_512_mb(board):
    spec, _ = board
    with Connection(spec) as conn:
        out = conn.run("uname -m; nproc; grep -c '^processor' /proc/cpuinfo; grep -m1 '^Features' /proc/cpuinfo; "
                       "sed -n 's/^MemTotal: *//p' /proc/meminfo").stdout.splitlines()
    arch, online, processors, features, memtotal = out
    assert arch == "armv7l"
    assert online == "4" and processors == "4"  # booted with maxcpus=2, the other two onlined by init
    assert "neon" in features.split()
    assert 450 * 1024 < int(memtotal.split()[0]) <= 512 * 1024


def test_board_is_bare_no_compiler_no_acl(board):
    with Connection(board[0]) as conn:
        out = conn.run("ls /usr/bin /usr/lib /lib; find / -xdev -name 'libarm_compute*' 2>/dev/null; "
                       "command -v gcc cc g++ || true").stdout
    assert "libarm_compute" not in out and "gcc" not in out


def test_ssh_listens_on_loopback_only_and_host_key_is_pinned_before_use(board):
    spec, instance = board
    port = instance.port()
    listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    local = {fields[1] for fields in listening if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port}
    assert local == {f"0100007F:{port:04X}"}  # 127.0.0.1 only
    pinned = known_hosts.lookup(spec.known_hosts, spec.host_key_alias)
    assert list(pinned) == ["ssh-ed25519"]
    with Connection(spec) as conn:  # no --trust-host-key needed: the key was pinned when the board started
        assert conn.transport.get_remote_server_key() == pinned["ssh-ed25519"]


def test_start_is_idempotent_and_status_reports_the_port(board):
    spec, instance = board
    pid = instance.pid()
    assert instance.start(log=lambda m: None, progress=False) == instance.port()
    assert instance.pid() == pid
    status = subprocess.run([sys.executable, "-m", "deploy.board", "status", "--board", str(spec.source)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert status.returncode == 0 and f"127.0.0.1:{instance.port()}" in status.stdout


def test_board_cli_start_stop_leaves_no_process_and_keeps_the_console_log(tmp_path):
    path = testing.board_file(tmp_path, "pytest-lifecycle")
    cli = [sys.executable, "-m", "deploy.board"]
    instance = vm.Instance(boards.load(str(path)))
    try:
        started = subprocess.run([*cli, "start", "--board", str(path)], cwd=PROJECT_ROOT, capture_output=True,
                                 text=True, timeout=300)
        assert started.returncode == 0, started.stderr
        assert re.search(r"running on 127\.0\.0\.1:\d+ \(booted in [\d.]+ s\)", started.stdout)
        pid = instance.pid()
        assert pid is not None
    finally:
        stopped = subprocess.run([*cli, "stop", "--board", str(path)], cwd=PROJECT_ROOT, capture_output=True,
                                 text=True, timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/cmdline").read_bytes() == b""
    assert instance.pid() is None and instance.port() is None
    assert "init: 4 cores" in instance.console.read_text()
    status = subprocess.run([*cli, "status", "--board", str(path)], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert status.returncode == 3 and "stopped" in status.stdout


def test_board_without_neon_is_refused_before_anything_is_uploaded(tmp_path):
    path = testing.board_file(tmp_path, "pytest-noneon", emulator={"cpu": "cortex-a15,neon=off"},
                              remote_dir="/data/noneon")
    with testing.running_board(path):
        proc = testing.deploy("--board", str(path), "--runs", "1", "--warmup", "0")
        assert proc.returncode == 1
        assert "missing CPU features: /proc/cpuinfo" in testing.error_line(proc) and "`neon`" in proc.stderr
        with Connection(boards.load(str(path))) as conn:
            assert conn.run("ls /data").stdout.split() == []  # nothing written


@pytest.mark.parametrize("edit, message", [
    ({"port": "22"}, "field port: '22' is not valid"),
    ({"remote_dir": "relative/dir"}, "field remote_dir: 'relative/dir' does not match"),
    ({"colour": "blue"}, "Additional properties are not allowed ('colour' was unexpected)"),
])
def test_board_file_errors_name_the_file_and_field(tmp_path, edit, message):
    path = testing.board_file(tmp_path, "broken", **edit)
    with pytest.raises(DeployError) as err:
        boards.load(str(path))
    assert str(path) in str(err.value) and message in str(err.value)


def test_unknown_board_lists_the_known_ones():
    proc = testing.deploy("--board", "no-such-board")
    assert proc.returncode == 1
    assert "unknown board 'no-such-board'" in testing.error_line(proc) and "emulated" in proc.stderr


def test_board_image_keeps_its_host_key_private(models_board):
    """The initramfs holds the emulated board's private host key: readable by its owner only."""
    import stat
    from deploy import image
    initrds = list((image.BOARD_CACHE / "image").glob("*/initrd.gz"))
    assert initrds and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in initrds)
