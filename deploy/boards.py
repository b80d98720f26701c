"""Board files (configs/boards/*.yaml): where a board is, how to log in, and what it must be.

Boards are data so that a real board is the same code path as the emulated one with another file. Files are
checked against a JSON schema, so a typo names its file and field instead of failing later over SSH.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from deploy import CACHE
from deploy.errors import DeployError
from neoncc import PROJECT_ROOT

BOARD_DIR = PROJECT_ROOT / "configs" / "boards"
DEFAULT_BOARD = "emulated"
DEFAULT_KNOWN_HOSTS = CACHE / "deploy" / "known_hosts"
SYSTEM_DIRS = {"", "/root", "/home", "/tmp", "/var", "/opt", "/data", "/mnt", "/srv", "/lib64"}

_EMULATOR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["machine", "cpu", "memory_mb", "kernel_package", "packages", "modules"],
    "properties": {
        "machine": {"type": "string", "description": "qemu-system-arm -M value"},
        "cpu": {"type": "string", "description": "qemu-system-arm -cpu value, properties allowed (neon=off)"},
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
    "required": ["name", "host", "port", "user", "key_file", "remote_dir", "arch", "cores"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
        "description": {"type": "string"},
        "host": {"type": "string", "minLength": 1},
        "port": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"const": "auto"}],
                 "description": "SSH port; 'auto' for an emulated board, whose port is picked at start"},
        "user": {"type": "string", "minLength": 1},
        "key_file": {"type": "string", "description": "private key; relative to the project, ~ expanded"},
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
        return self.spec["host"]

    @property
    def user(self) -> str:
        return self.spec["user"]

    @property
    def key_file(self) -> Path:
        return _project_path(self.spec["key_file"])

    @property
    def known_hosts(self) -> Path:
        return _project_path(self.spec["known_hosts"]) if "known_hosts" in self.spec else DEFAULT_KNOWN_HOSTS

    @property
    def host_key_alias(self) -> str | None:
        return self.spec.get("host_key_alias")

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
        if self.spec["port"] != "auto":
            return self.spec["port"]
        from deploy import vm  # only emulated boards need the VM module
        port = vm.Instance(self).port()
        if port is None:
            raise DeployError(f"board {self.name}: not running (start it with `python3 -m deploy.board start`)")
        return port

    def describe(self) -> str:
        return f"{self.user}@{self.host}" + ("" if self.spec["port"] == "auto" else f":{self.spec['port']}")


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
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(spec), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.path) or "(top level)"
        raise DeployError(f"{path}: field {where}: {err.message}")
    remote = spec["remote_dir"].rstrip("/")
    if any(part in (".", "..") for part in remote.split("/")) or remote in SYSTEM_DIRS or \
            remote.split("/")[1] in ("proc", "sys", "dev", "etc", "bin", "sbin", "lib", "usr", "boot", "run"):
        raise DeployError(f"{path}: field remote_dir: '{spec['remote_dir']}' is a system directory or inside one; "
                          "give a directory of its own, such as /opt/neoncc or /data/neoncc")
    if spec["port"] == "auto" and "emulator" not in spec:
        raise DeployError(f"{path}: field port: 'auto' is only for emulated boards (with an emulator: section)")
    return Board(spec, path)
