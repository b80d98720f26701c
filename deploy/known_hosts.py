"""The project's known-hosts file: host keys pinned once, then required to match on every connection.

OpenSSH's format, so `ssh -o UserKnownHostsFile=...` can read it too. A board whose port changes (the emulated
one) is pinned under an alias, like OpenSSH's HostKeyAlias.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import paramiko


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256:... fingerprint, the one `ssh-keygen -lf` prints."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


def _load(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if path.is_file():
        keys.load(str(path))
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
    keys = _load(path)
    if dict(keys.lookup(name) or {}) == {key.get_name(): key}:
        return
    keys[name] = {key.get_name(): key}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    keys.save(str(tmp))
    tmp.replace(path)
