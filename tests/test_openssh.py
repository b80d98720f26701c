"""OpenSSH conventions, against the emulated board (a real dropbear server) and a real ssh-agent: a board file
may name a Host alias of ~/.ssh/config, with the port, user and IdentityFile from there; a passphrase-protected
key works through the agent (and is a clear error without it); the user's known_hosts is read (never written);
an unknown host key is pinned once, only when trusted, and only after the key was found and the login worked."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from conftest import ROOT
from deploy import boards, known_hosts, testing
from deploy.errors import DeployError
from deploy.ssh import Connection

TINY = ROOT / "tests/models/tiny_passes.yaml"
FAST = ["--model", str(TINY), "--runs", "1", "--warmup", "0", "--json"]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    path = testing.board_file(tmp_path_factory.mktemp("openssh-board"), "pytest-openssh")
    with testing.running_board(path):
        yield boards.load(str(path))


@pytest.fixture
def home(tmp_path, board):
    """A HOME whose ~/.ssh/config names the board `zuluko`, with a passphrase-protected copy of its key."""
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    shutil.copyfile(board.key_file, ssh / "id_board")
    shutil.copyfile(f"{board.key_file}.pub", ssh / "id_board.pub")
    os.chmod(ssh / "id_board", 0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", "a passphrase", "-f", str(ssh / "id_board")],
                   check=True, capture_output=True)
    (ssh / "config").write_text(f"Host zuluko\n    HostName 127.0.0.1\n    Port {board.port}\n    User root\n"
                                "    IdentityFile ~/.ssh/id_board\n")
    return ssh.parent


@pytest.fixture
def agent(tmp_path, board):
    """A real ssh-agent holding the board's key; stopped afterwards (by its own pid)."""
    sock = tmp_path / "agent.sock"
    out = subprocess.run(["ssh-agent", "-s", "-a", str(sock)], check=True, capture_output=True, text=True).stdout
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", out).group(1))
    try:
        subprocess.run(["ssh-add", str(board.key_file)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True)
        yield str(sock)
    finally:
        os.kill(pid, 15)


def alias_board(directory, **fields):
    spec = {"name": "pytest-alias", "host": "zuluko", "remote_dir": "/data/alias", "arch": "armv7l", "cores": 4,
            "known_hosts": str(directory / "project_known_hosts"), **fields}
    path = directory / "alias.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def deploy(home, sock, *args):
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(HOME=str(home), **({"SSH_AUTH_SOCK": sock} if sock else {}))
    return subprocess.run([shutil.which("python3") or "python3", str(ROOT / "deploy.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)


def test_alias_with_an_agent_key_deploys_and_pins_the_host_key_once(tmp_path, board, home, agent):
    path = alias_board(tmp_path)
    pins = tmp_path / "project_known_hosts"
    name = f"[127.0.0.1]:{board.port}"

    # no agent: the encrypted IdentityFile is a clear error, before anything is pinned or connected
    proc = deploy(home, None, "--board", str(path), "--trust-host-key", *FAST)
    line = testing.error_line(proc)
    assert proc.returncode == 1 and "protected by a passphrase" in line and "ssh-add" in line and "id_board" in line
    assert not pins.exists()

    # the agent holds it; the host key is still unknown: refused until trusted
    proc = deploy(home, agent, "--board", str(path), *FAST)
    assert proc.returncode == 1 and f"unknown host key for {name}" in testing.error_line(proc)
    assert not pins.exists()

    trusted = deploy(home, agent, "--board", str(path), "--trust-host-key", *FAST)
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stderr.count("pinned host key") == 1
    assert f'"host": "root@127.0.0.1:{board.port}"' in trusted.stdout
    assert known_hosts.lookup(pins, name) and len(pins.read_text().splitlines()) == 1
    schema = json.loads((ROOT / "docs/schemas/deploy-result.schema.json").read_text())
    jsonschema.validate(json.loads(trusted.stdout), schema)  # the documented --json result, schema_version 1
    assert not any(line.startswith("build: arm-linux") for line in trusted.stderr.splitlines())  # -v shows those

    again = deploy(home, agent, "--board", str(path), "-q", *FAST)
    assert again.returncode == 0, again.stderr
    assert again.stderr == "" and len(pins.read_text().splitlines()) == 1  # -q: the result only


def test_the_users_known_hosts_is_read_and_never_written(tmp_path, board, home, agent, monkeypatch):
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SSH_AUTH_SOCK", agent)
    name = f"[127.0.0.1]:{board.port}"
    host_key = board.known_hosts.read_text().split(None, 1)[1]  # what the image pinned under the board's alias
    known_hosts.pin(home / ".ssh" / "known_hosts", name, host_key)
    before = (home / ".ssh" / "known_hosts").read_text()
    spec = boards.load(str(alias_board(tmp_path)))
    assert (spec.hostname, spec.port, spec.user) == ("127.0.0.1", board.port, "root")
    with Connection(spec) as conn:  # no --trust-host-key needed: the user's file knows it
        assert conn.run("uname -m").stdout.strip() == "armv7l"
    assert not (tmp_path / "project_known_hosts").exists()
    assert (home / ".ssh" / "known_hosts").read_text() == before

    # a different key under that name in the user's file is a changed key, trusted or not
    import paramiko
    impostor = paramiko.ECDSAKey.generate()
    (home / ".ssh" / "known_hosts").write_text(f"{name} {impostor.get_name()} {impostor.get_base64()}\n")
    with pytest.raises(DeployError, match="HOST KEY CHANGED"):
        Connection(boards.load(str(alias_board(tmp_path))), trust_host_key=True)


def test_a_missing_key_file_fails_before_anything_is_pinned(tmp_path, board, home, monkeypatch):
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    spec = boards.load(str(alias_board(tmp_path, key_file=str(tmp_path / "no_such_key"))))
    with pytest.raises(DeployError, match="no_such_key does not exist"):
        Connection(spec, trust_host_key=True)
    assert not (tmp_path / "project_known_hosts").exists()
