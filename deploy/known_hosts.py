"""The project's known-hosts file: host keys pinned once, then required to match on every connection.

OpenSSH's format, so `ssh -o UserKnownHostsFile=...` can read it too. A board whose port changes (the emulated
one) is pinned under an alias, like OpenSSH's HostKeyAlias.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
from pathlib import Path

import paramiko

from deploy.errors import DeployError


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256:... fingerprint, the one `ssh-keygen -lf` prints."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


def check_readable(path: Path) -> None:
    """A known-hosts file that exists must be one paramiko reads; the error names it."""
    _load(path)


def _load(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if path.exists() and not path.is_file():
        raise DeployError(f"known-hosts file {path} is not a file")
    if path.is_file():
        try:
            keys.load(str(path))
        except (UnicodeDecodeError, OSError, ValueError, paramiko.SSHException) as err:
            raise DeployError(f"known-hosts file {path} cannot be read ({err}); fix or remove it, then pin the "
                              "board's key again") from None
    return keys


def lookup(path: Path, name: str) -> dict[str, paramiko.PKey]:
    """The keys pinned for name, by key type (empty when none)."""
    entry = _load(path).lookup(name)
    return dict(entry) if entry else {}


def pin(path: Path, name: str, key: paramiko.PKey | str) -> None:
    """Pin key (a PKey or an OpenSSH public-key line) as the only key of name; other hosts' lines are kept."""
    if isinstance(key, str):
        key_type, blob = key.split()[:2]
        key = paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Read, change and replace under a lock: two boards started at once (a fleet) must not drop each other's pin.
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        keys = _load(path)
        if dict(keys.lookup(name) or {}) == {key.get_name(): key}:
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)  # files pinned by older versions were world-readable
            return
        keys[name] = {key.get_name(): key}
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private from the first byte
        os.close(fd)
        keys.save(str(tmp))
        os.chmod(tmp, 0o600)
        tmp.replace(path)
