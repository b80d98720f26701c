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
    except (paramiko.PasswordRequiredException, TypeError):  # cryptography's OpenSSH-format loader: TypeError
        raise DeployError(f"key file {path} is protected by a passphrase and the ssh-agent does not hold it: "
                          f"add it with `ssh-add {path}` (no passphrases are asked for or stored)") from None
    except (paramiko.SSHException, ValueError, OSError) as err:
        raise DeployError(f"key file {path}: not a private key paramiko can read ({err})") from None


def check_credentials(board) -> None:
    """The board's keys and known-hosts file are usable (each fault one clear error)."""
    credentials(board)
    known_hosts.check_readable(board.known_hosts)
def _public_blob(path: Path) -> bytes | None:
    """The public key of a key file from its .pub beside it (readable even when the key is encrypted)."""
    try:
        return paramiko.PublicBlob.from_file(str(path) + ".pub").key_blob
    except (OSError, ValueError, paramiko.SSHException):
        return None


def credentials(board) -> list[tuple[str, paramiko.PKey]]:
    """The keys to log in with, as OpenSSH picks them: the ssh-agent's, then the key files (the board's
    key_file, else the config's IdentityFile, else ~/.ssh/id_*). Checked before anything touches the board, so
    a missing or unreadable key fails before a host key is pinned."""
    keys: list[tuple[str, paramiko.PKey]] = []
    if board.use_agent:
        try:
            keys += [(f"agent key {k.fingerprint}", k) for k in paramiko.Agent().get_keys()]
        except paramiko.SSHException:
            pass  # no agent answering: the key files alone
    in_agent = {k.asbytes() for _, k in keys}
    problem = None
    for path in board.identity_files:
        if board.key_file is None and not path.is_file():
            continue  # a config or default identity that does not exist: OpenSSH skips it too
        if _public_blob(path) in in_agent:
            continue  # the agent holds it (perhaps it is passphrase-protected on disk)
        try:
            keys.append((f"key {path}", _load_key(path)))
        except DeployError as err:
            problem = problem or err
    if problem is not None and not keys:
        raise problem
    if not keys:
        raise DeployError(f"board {board.name}: no key to log in to {board.host} with: no ssh-agent key, no key_file "
                          "in the board file, no IdentityFile in ~/.ssh/config and no ~/.ssh/id_* file")
    return keys


class Connection:
    """An authenticated SSH connection to one board."""

    def __init__(self, board, trust_host_key: bool = False, log=print):
        self.board = board
        self.port = board.port
        host = board.hostname
        self.where = f"{board.user}@{host}:{self.port}"
        self._sftp: paramiko.SFTPClient | None = None
        timeout = board.connect_timeout_s
        self._keys = credentials(board)  # a key we cannot use is said before any connection is made
        known_hosts.check_readable(board.known_hosts)
        try:
            sock = socket.create_connection((host, self.port), timeout=timeout)
        except socket.gaierror as err:
            raise DeployError(f"board {board.name}: unknown host {host} ({err.strerror})") from None
        except socket.timeout:
            raise DeployError(f"board {board.name}: host {host}:{self.port} unreachable "
                              f"(no answer within {timeout:.0f} s)") from None
        except OSError as err:
            raise DeployError(f"board {board.name}: host {host}:{self.port} unreachable "
                              f"({err.strerror or err})") from None
        self.transport = paramiko.Transport(sock)
        try:
            try:
                self.transport.start_client(timeout=timeout)
                self.transport.get_remote_server_key()  # "No existing session" when nothing was negotiated
            except (paramiko.SSHException, EOFError, OSError) as err:
                raise DeployError(f"board {board.name}: no SSH server answers at {host}:{self.port} "
                                  f"({err or type(err).__name__})") from None
            self.transport.set_keepalive(15)
            pin = self._check_host_key(trust_host_key)
            self._authenticate()
            if pin is not None:  # trusted on first use, and only once the login worked
                name, key = pin
                known_hosts.pin(board.known_hosts, name, key)
                log(f"board {board.name}: pinned host key {known_hosts.fingerprint(key)} for {name} "
                    f"in {board.known_hosts}")
        except BaseException:
            self.transport.close()
            raise

    def _check_host_key(self, trust: bool) -> tuple[str, paramiko.PKey] | None:
        """The host key must be known: pinned in the project's file or in the user's known_hosts (read only).
        Returns what to pin when it is unknown and the user trusts it; a known name with another key is refused."""
        board = self.board
        key = self.transport.get_remote_server_key()
        host = board.hostname
        name = board.host_key_alias or (host if self.port == 22 else f"[{host}]:{self.port}")
        found = False
        for path in [board.known_hosts, *board.user_known_hosts]:
            pinned = known_hosts.lookup(path, name)
            if not pinned:
                continue
            if pinned.get(key.get_name()) != key:
                was = ", ".join(known_hosts.fingerprint(k) for k in pinned.values())
                raise DeployError(
                    f"board {board.name}: HOST KEY CHANGED for {name}: it presents {known_hosts.fingerprint(key)} "
                    f"but {path} pins {was}. Someone may be intercepting the connection; if the board was "
                    f"reinstalled, delete the {name} line from {path} and trust the new key once")
            found = True
        if found:
            return None
        if not trust:
            raise DeployError(
                f"board {board.name}: unknown host key for {name}: {known_hosts.fingerprint(key)}. "
                f"If that is the board's key, rerun once with --trust-host-key to pin it in {board.known_hosts}")
        return name, key

    def _authenticate(self) -> None:
        for label, key in self._keys:
            try:
                self.transport.auth_publickey(self.board.user, key)
                return
            except paramiko.AuthenticationException:
                continue
            except paramiko.SSHException as err:
                raise DeployError(f"board {self.board.name}: authentication with {self.where} failed: {err}") from None
        tried = ", ".join(label for label, _ in self._keys)
        raise DeployError(f"board {self.board.name}: authentication refused by {self.where} for {tried} (is the "
                          f"public key in ~{self.board.user}/.ssh/authorized_keys on the board?)")

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
                if not self.transport.is_active():  # the session itself ended: a board rebooted or stopped
                    raise DeployError(f"board {self.board.name}: connection to {self.where} lost before SFTP "
                                      f"started ({err}); was the board rebooted or stopped?") from None
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
