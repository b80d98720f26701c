"""SSH to a board with paramiko: pinned host keys, key authentication only, and one clear error per fault.

The transport is driven directly rather than through SSHClient so the host key can be checked under the
board's alias (its port may change) and so each failure (unreachable, not SSH, key changed, auth refused) is
told apart before anything else happens.
"""

from __future__ import annotations

import select
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from deploy import known_hosts
from deploy.errors import DeployError


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


def _load_key(path: Path) -> paramiko.PKey:
    if not path.is_file():
        raise DeployError(f"key file {path} does not exist (board files name it in key_file)")
    try:
        return paramiko.PKey.from_path(path)
    except (paramiko.PasswordRequiredException, TypeError):  # paramiko 3.2+ says TypeError for OpenSSH-format keys
        raise DeployError(f"key file {path} is protected by a passphrase; give the board a key file without "
                          "one (no passwords are stored)") from None
    except (paramiko.SSHException, ValueError, OSError) as err:
        raise DeployError(f"key file {path}: not a private key paramiko can read ({err})") from None


def check_credentials(board) -> None:
    """The board's key file and known-hosts file are usable (each fault one clear error)."""
    _load_key(board.key_file)
    known_hosts.check_readable(board.known_hosts)


class Connection:
    """An authenticated SSH connection to one board."""

    def __init__(self, board, trust_host_key: bool = False, log=print):
        self.board = board
        self.port = board.port
        self.where = f"{board.user}@{board.host}:{self.port}"
        self._sftp: paramiko.SFTPClient | None = None
        timeout = board.connect_timeout_s
        self._key = _load_key(board.key_file)  # a key we cannot use is said before any connection is made
        known_hosts.check_readable(board.known_hosts)
        try:
            sock = socket.create_connection((board.host, self.port), timeout=timeout)
        except socket.gaierror as err:
            raise DeployError(f"board {board.name}: unknown host {board.host} ({err.strerror})") from None
        except socket.timeout:
            raise DeployError(f"board {board.name}: host {board.host}:{self.port} unreachable "
                              f"(no answer within {timeout:.0f} s)") from None
        except OSError as err:
            raise DeployError(f"board {board.name}: host {board.host}:{self.port} unreachable "
                              f"({err.strerror or err})") from None
        self.transport = paramiko.Transport(sock)
        try:
            try:
                self.transport.start_client(timeout=timeout)
                self.transport.get_remote_server_key()  # "No existing session" when nothing was negotiated
            except (paramiko.SSHException, EOFError, OSError) as err:
                raise DeployError(f"board {board.name}: no SSH server answers at {board.host}:{self.port} "
                                  f"({err or type(err).__name__})") from None
            self.transport.set_keepalive(15)
            self._check_host_key(trust_host_key, log)
            self._authenticate()
        except BaseException:
            self.transport.close()
            raise

    def _check_host_key(self, trust: bool, log) -> None:
        board = self.board
        key = self.transport.get_remote_server_key()
        name = board.host_key_alias or (board.host if self.port == 22 else f"[{board.host}]:{self.port}")
        pinned = known_hosts.lookup(board.known_hosts, name)
        if not pinned:
            if not trust:
                raise DeployError(
                    f"board {board.name}: unknown host key for {name}: {known_hosts.fingerprint(key)}. "
                    f"If that is the board's key, rerun once with --trust-host-key to pin it in {board.known_hosts}")
            known_hosts.pin(board.known_hosts, name, key)
            log(f"board {board.name}: pinned host key {known_hosts.fingerprint(key)} for {name} "
                f"in {board.known_hosts}")
        elif pinned.get(key.get_name()) != key:
            was = ", ".join(known_hosts.fingerprint(k) for k in pinned.values())
            raise DeployError(
                f"board {board.name}: HOST KEY CHANGED for {name}: it presents {known_hosts.fingerprint(key)} but "
                f"{board.known_hosts} pins {was}. Someone may be intercepting the connection; if the board was "
                f"reinstalled, delete the {name} line from {board.known_hosts} and trust the new key once")

    def _authenticate(self) -> None:
        key = self._key
        try:
            self.transport.auth_publickey(self.board.user, key)
        except paramiko.AuthenticationException:
            raise DeployError(f"board {self.board.name}: authentication refused by {self.where} for key "
                              f"{self.board.key_file} (is its public key in ~{self.board.user}/.ssh/authorized_keys "
                              f"on the board?)") from None
        except paramiko.SSHException as err:
            raise DeployError(f"board {self.board.name}: authentication with {self.where} failed: {err}") from None

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self.transport.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = paramiko.SFTPClient.from_transport(self.transport)
                # Every SFTP request gives up when the board stops answering, instead of waiting for ever.
                self._sftp.get_channel().settimeout(self.io_timeout)
            except (paramiko.SSHException, EOFError, OSError) as err:
                raise DeployError(f"board {self.board.name}: no SFTP service at {self.where} ({err}); the board "
                                  "needs an SFTP server (OpenSSH's sftp-server)") from None
        return self._sftp

    @property
    def io_timeout(self) -> float:
        """How long one SFTP request may go unanswered before the board counts as gone."""
        return max(30.0, 3 * self.board.connect_timeout_s)

    def run(self, command: str, timeout: float = 60.0, check: bool = True) -> Result:
        """Run a shell command on the board and collect its output."""
        out: list[bytes] = []
        err: list[bytes] = []
        status = self.stream(command, out.append, err.append, timeout=timeout)
        result = Result(status, b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace"))
        if check and status != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise DeployError(f"board {self.board.name}: `{command}` failed with status {status}"
                              + (f": {detail[-1]}" if detail else ""))
        return result

    def stream(self, command: str, on_stdout, on_stderr, timeout: float) -> int:
        """Run a command, handing its output to the callbacks as it arrives; returns its exit status.

        The timeout guards the connection (a board that stops answering); the remote program's own time limit
        is the supervisor's job, which can kill its whole process tree.
        """
        try:
            channel = self.transport.open_session(timeout=self.board.connect_timeout_s)
            channel.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as err:
            raise DeployError(f"board {self.board.name}: connection to {self.where} lost ({err})") from None
        deadline = time.monotonic() + timeout
        try:
            while True:
                while channel.recv_ready():
                    on_stdout(channel.recv(65536))
                while channel.recv_stderr_ready():
                    on_stderr(channel.recv_stderr(65536))
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                if channel.closed and not self.transport.is_active():
                    raise DeployError(f"board {self.board.name}: connection to {self.where} lost while running "
                                      f"`{command}`")
                if time.monotonic() > deadline:
                    raise DeployError(f"board {self.board.name}: no end of `{command}` within {timeout:.0f} s; "
                                      "the board may be hung")
                select.select([channel], [], [], 0.2)
            return channel.recv_exit_status()
        finally:
            channel.close()


def quote(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)
