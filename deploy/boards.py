"""Board files (configs/boards/*.yaml): where a board is, how to log in, and what it must be.

Boards are data so that a real board is the same code path as the emulated one with another file. Files are
checked against a JSON schema, so a typo names its file and field instead of failing later over SSH.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import paramiko

import jsonschema
import yaml

from deploy import CACHE
from deploy.errors import DeployError
from neoncc import PROJECT_ROOT

BOARD_DIR = PROJECT_ROOT / "configs" / "boards"
DEFAULT_BOARD = "emulated"
DEFAULT_KNOWN_HOSTS = CACHE / "deploy" / "known_hosts"
SYSTEM_DIRS = {"", "/root", "/home", "/tmp", "/var", "/opt", "/data", "/mnt", "/srv", "/lib64"}
DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")  # OpenSSH's default identity files, in its order

_EMULATOR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["machine", "cpu", "memory_mb", "kernel_package", "packages", "modules"],
    "properties": {
        "machine": {"type": "string", "description": "qemu-system -M value (the emulator is the target's)"},
        "cpu": {"type": "string", "description": "qemu-system -cpu value, properties allowed (neon=off)"},
        "memory_mb": {"type": "integer", "minimum": 64},
        "boot_cores": {"type": "integer", "minimum": 1,
                       "description": "cores the kernel boots with (maxcpus=); init onlines the rest"},
        "data_mb": {"type": "integer", "minimum": 8, "description": "size of the tmpfs holding remote_dir"},
        "boot_timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "kernel_package": {"type": "string"},
        "packages": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "modules": {"type": "array", "items": {"type": "string"}},
    },
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    # host may be a Host alias of ~/.ssh/config; port, user and key_file then come from it (or OpenSSH's defaults)
    "required": ["name", "host", "remote_dir", "arch", "cores"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
        "description": {"type": "string"},
        "host": {"type": "string", "minLength": 1},
        "port": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"const": "auto"}],
                 "description": "SSH port; 'auto' for an emulated board, whose port is picked at start"},
        "user": {"type": "string", "minLength": 1},
        "key_file": {"type": "string", "description": "private key; relative to the project, ~ expanded; without "
                                                       "it: the ssh-agent's keys, IdentityFile, ~/.ssh/id_*"},
        "known_hosts": {"type": "string", "description": "where host keys are pinned"},
        "host_key_alias": {"type": "string", "description": "name the host key is pinned under"},
        "remote_dir": {"type": "string", "pattern": "^(/[A-Za-z0-9_][A-Za-z0-9_.+-]*)+/?$",
                       "description": "absolute; letters, digits and _ . + - only; not a system directory"},
        "arch": {"type": "string", "description": "what `uname -m` must print"},
        "cores": {"type": "integer", "minimum": 1},
        "min_free_memory_mb": {"type": "integer", "minimum": 0},
        "connect_timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "run_timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "emulator": _EMULATOR_SCHEMA,
    },
}


def _project_path(value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


@dataclass
class Board:
    """One board file, validated; paths resolved."""

    spec: dict
    source: Path

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def host(self) -> str:
        """The host as the board file names it: an address, or a Host alias of ~/.ssh/config."""
        return self.spec["host"]

    @cached_property
    def ssh_config(self) -> dict:
        """What the user's ~/.ssh/config says for this host (paramiko's reading of OpenSSH's rules); the board
        file's own fields win over it, as options on ssh's command line do."""
        path = Path.home() / ".ssh" / "config"
        if not path.is_file():
            return {}
        try:
            return dict(paramiko.SSHConfig.from_path(str(path)).lookup(self.host))
        except (paramiko.SSHException, OSError, ValueError) as err:
            raise DeployError(f"{path}: cannot read it for board {self.name} ({err})") from None

    @property
    def hostname(self) -> str:
        """The address to connect to (the config's HostName for an alias)."""
        return self.ssh_config.get("hostname", self.host)

    @property
    def user(self) -> str:
        return self.spec.get("user") or self.ssh_config.get("user") or getpass.getuser()

    @property
    def key_file(self) -> Path | None:
        """The board file's own key_file, if it names one."""
        return _project_path(self.spec["key_file"]) if "key_file" in self.spec else None

    @property
    def identity_files(self) -> list[Path]:
        """Key files to try after the agent's keys: key_file, else the config's IdentityFile, else the
        default ~/.ssh/id_* that exist."""
        if self.key_file is not None:
            return [self.key_file]
        if self.ssh_config.get("identityfile"):
            return [Path(p).expanduser() for p in self.ssh_config["identityfile"]]
        return [p for p in (Path.home() / ".ssh" / n for n in DEFAULT_IDENTITIES) if p.is_file()]

    @property
    def use_agent(self) -> bool:
        return bool(os.environ.get("SSH_AUTH_SOCK")) and self.ssh_config.get("identitiesonly", "no") != "yes"

    @property
    def known_hosts(self) -> Path:
        """The project's pins (where --trust-host-key writes)."""
        return _project_path(self.spec["known_hosts"]) if "known_hosts" in self.spec else DEFAULT_KNOWN_HOSTS

    @property
    def user_known_hosts(self) -> list[Path]:
        """The user's known_hosts files, read as well (never written): the config's UserKnownHostsFile or
        OpenSSH's default ~/.ssh/known_hosts."""
        files = self.ssh_config.get("userknownhostsfile", "~/.ssh/known_hosts ~/.ssh/known_hosts2").split()
        return [Path(f).expanduser() for f in files if f != "/dev/null"]

    @property
    def host_key_alias(self) -> str | None:
        return self.spec.get("host_key_alias") or self.ssh_config.get("hostkeyalias")

    @property
    def remote_dir(self) -> str:
        return self.spec["remote_dir"].rstrip("/") or "/"

    @property
    def arch(self) -> str:
        return self.spec["arch"]

    @property
    def cores(self) -> int:
        return self.spec["cores"]

    @property
    def min_free_memory_mb(self) -> int:
        return self.spec.get("min_free_memory_mb", 64)

    @property
    def connect_timeout_s(self) -> float:
        return self.spec.get("connect_timeout_s", 10.0)

    @property
    def run_timeout_s(self) -> float:
        return self.spec.get("run_timeout_s", 600.0)

    @property
    def emulator(self) -> dict | None:
        return self.spec.get("emulator")

    @property
    def port(self) -> int:
        """The SSH port; an emulated board's comes from its running instance."""
        if self.spec.get("port", "config") == "config":
            try:
                return int(self.ssh_config.get("port", 22))
            except ValueError:
                raise DeployError(f"~/.ssh/config: Port of {self.host} is not a number") from None
        if self.spec["port"] != "auto":
            return self.spec["port"]
        from deploy import vm  # only emulated boards need the VM module
        port = vm.Instance(self).port()
        if port is None:
            raise DeployError(f"board {self.name}: not running (start it with `python3 -m deploy.board start`)")
        return port

    def describe(self) -> str:
        return f"{self.user}@{self.host}" + ("" if self.spec.get("port", "auto") == "auto" else f":{self.port}")


def board_path(name_or_path: str) -> Path:
    """A board given by name (configs/boards/NAME.yaml) or by the path of a YAML file."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        return Path(name_or_path)
    return BOARD_DIR / f"{name_or_path}.yaml"


def load(name_or_path: str = DEFAULT_BOARD) -> Board:
    path = board_path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in BOARD_DIR.glob("*.yaml"))) or "none"
        raise DeployError(f"unknown board '{name_or_path}': no file {path} (known boards: {known})")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DeployError(f"{path}: not valid YAML: {err}") from None
    return from_spec(spec, path)


def from_spec(spec, source: Path, field: str = "") -> Board:
    """A board from its fields, checked as a board file is; `field` says where they sit in `source` when they are
    part of a larger file (a fleet file's `boards[2]`), so an error names the file and the field."""
    prefix = f"{field}." if field else ""
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(spec), key=lambda e: list(e.path))
    if not errors and "emulator" in spec:
        errors = [jsonschema.ValidationError(f"'{name}' is a required property (emulated boards)")
                  for name in ("port", "user", "key_file") if name not in spec][:1]
    if errors:
        err = errors[0]
        where = prefix + ".".join(str(p) for p in err.path) if err.path else (field or "(top level)")
        raise DeployError(f"{source}: field {where}: {err.message}")
    remote = spec["remote_dir"].rstrip("/")
    if any(part in (".", "..") for part in remote.split("/")) or remote in SYSTEM_DIRS or \
            remote.split("/")[1] in ("proc", "sys", "dev", "etc", "bin", "sbin", "lib", "usr", "boot", "run"):
        raise DeployError(f"{source}: field {prefix}remote_dir: '{spec['remote_dir']}' is a system directory or "
                          "inside one; give a directory of its own, such as /opt/neoncc or /data/neoncc")
    if spec.get("port") == "auto" and "emulator" not in spec:
        raise DeployError(f"{source}: field {prefix}port: 'auto' is only for emulated boards (with an emulator: "
                          "section)")
    return Board(spec, source)
