"""Toolchain files (toolchains/*.yaml) and the sysroot each names."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from neoncc import PROJECT_ROOT
from neoncc.errors import UserError, exit_status
from neoncc.targets import debian

TOOLCHAIN_DIR = PROJECT_ROOT / "toolchains"
APT_STATE = PROJECT_ROOT / ".cache" / "apt"


@dataclass
class Toolchain:
    name: str
    spec: dict

    @property
    def sysroot(self) -> Path:
        return PROJECT_ROOT / self.spec["sysroot"]["path"]

    @property
    def cxx(self) -> str:
        return self.spec["compiler_prefix"] + "g++"

    @property
    def include_dirs(self) -> list[Path]:
        return [self.sysroot / d for d in self.spec["acl"]["include_dirs"]]

    @property
    def lib_dir(self) -> Path:
        return self.sysroot / self.spec["acl"]["lib_dir"]

    def runner(self) -> list[str]:
        """Command prefix that runs one of this target's programs on the host."""
        return [part.format(sysroot=self.sysroot) for part in self.spec["runner"]]


SCHEMA = yaml.safe_load((Path(__file__).with_name("toolchain.schema.yaml")).read_text())


def load(name: str) -> Toolchain:
    """A target file, checked against its schema (errors name the file, line and field)."""
    from neoncc.frontend.yaml_model import read_checked
    path = TOOLCHAIN_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TOOLCHAIN_DIR.glob("*.yaml")))
        raise UserError(f"unknown target '{name}': no {path} (known: {known})")
    _, spec = read_checked(path, SCHEMA, "target description")
    if spec["name"] != name:
        raise UserError(f"{path}: name: '{spec['name']}' differs from the file name '{name}'")
    return Toolchain(name, spec)


def default_target() -> str:
    """The target used when none is named: the toolchain file that says `default: true`."""
    marked = [p.stem for p in sorted(TOOLCHAIN_DIR.glob("*.yaml")) if (yaml.safe_load(p.read_text()) or {}).get("default")]
    if len(marked) != 1:
        raise UserError(f"{TOOLCHAIN_DIR}: exactly one target file must say `default: true` (found: {marked or 'none'})")
    return marked[0]


def for_machine(machine: str, where: str = "") -> Toolchain:
    """The target whose boards say `uname -m` = machine (each file's uname_machine); where names who said it."""
    found = [load(p.stem) for p in sorted(TOOLCHAIN_DIR.glob("*.yaml"))]
    matching = [t for t in found if machine in t.spec["uname_machine"]]
    if not matching:
        known = ", ".join(f"{m} ({t.name})" for t in found for m in t.spec["uname_machine"])
        raise UserError(f"{where + ': ' if where else ''}no target in {TOOLCHAIN_DIR} runs on `uname -m` = "
                        f"{machine} (known: {known})")
    return matching[0]


ELF_MACHINES = {3: "Intel 80386", 40: "ARM", 62: "Advanced Micro Devices X86-64", 183: "AArch64", 243: "RISC-V"}


def elf_machine(path: Path) -> str:
    """e_machine of an ELF file as `readelf -h` names it (the toolchain files' elf_machine), read from its header."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise UserError(f"{path}: not an ELF executable")
    number = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return ELF_MACHINES.get(number, f"machine {number}")


def build_dir(root: str | Path, target: str, model: str, precision: str = "float32") -> Path:
    """Where a build of a model for a target goes: <root>/<target>/<model>[-int8]/ (SConstruct, deploy, bench)."""
    return Path(root) / target / _flavour(model, precision)


def tuning_file(target: str, model: str, precision: str = "float32") -> Path:
    """The tuning file a build reads unless told otherwise, and the one `bench tune` writes:
    configs/tuning/<target>/<model>[-int8].yaml, `model` being the engine's name (its description's file name)."""
    return PROJECT_ROOT / "configs" / "tuning" / target / f"{_flavour(model, precision)}.yaml"


def _flavour(model: str, precision: str) -> str:
    return model + ("-int8" if precision == "int8" else "")


def ensure_sysroot(toolchain: Toolchain, log=print) -> Path:
    """Fill the toolchain's sysroot from Debian packages; does nothing when it already holds those versions."""
    spec = toolchain.spec["sysroot"]
    apt = debian.PrivateApt(APT_STATE / spec["debian_arch"], spec["debian_arch"])
    stamp = toolchain.sysroot / ".packages.json"
    if stamp.is_file() and sorted(json.loads(stamp.read_text())) == sorted(spec["packages"]):
        return toolchain.sysroot
    log(f"sysroot {toolchain.sysroot.relative_to(PROJECT_ROOT)}: fetching {', '.join(spec['packages'])}")
    apt.update()
    debs = apt.download(spec["packages"], APT_STATE / spec["debian_arch"] / "debs")
    staging = toolchain.sysroot.with_name(toolchain.sysroot.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    debian.extract(debs, staging)
    (staging / ".packages.json").write_text(json.dumps(spec["packages"]))
    shutil.rmtree(toolchain.sysroot, ignore_errors=True)
    staging.rename(toolchain.sysroot)
    return toolchain.sysroot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prepare a target's sysroot from Debian packages.")
    parser.add_argument("target", nargs="?", help="a file toolchains/<target>.yaml (default: the one marked default)")
    args = parser.parse_args(argv)
    return exit_status(lambda: print(ensure_sysroot(load(args.target or default_target()))))


if __name__ == "__main__":
    sys.exit(main())
