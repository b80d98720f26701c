"""Download and unpack Debian packages of a foreign architecture without touching the host's dpkg.

A private apt state (its own sources, lists and cache) that lists only the foreign architecture avoids
multiarch installs, which fail whenever the host's and the foreign architecture's versions of a shared
package differ. The mirrors are the host's own apt sources, re-read for the foreign architecture.
"""

from __future__ import annotations

import glob
import re
import subprocess
from pathlib import Path

from neoncc.errors import UserError


def _host_source_entries(suite: str | None = None) -> list[str]:
    """The host's apt sources as one-line `deb` entries (from sources.list and deb822 *.sources files); with
    `suite`, the host's release name in each entry is replaced by it (bookworm-updates -> trixie-updates)."""
    entries: list[str] = []
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        if Path(path).is_file():
            for line in Path(path).read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line.startswith("deb "):
                    entries.append(re.sub(r"^deb\s+(\[[^]]*\]\s+)?", "", line))
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", Path(path).read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                continue
            for uri in fields.get("uris", "").split():
                for release in fields.get("suites", "").split():
                    entries.append(f"{uri} {release} {fields.get('components', 'main')}")
    if not entries:
        raise UserError("no apt sources found in /etc/apt/sources.list or /etc/apt/sources.list.d/")
    if suite:
        entries = list(dict.fromkeys(_with_suite(entry, suite) for entry in entries))
    return entries


def _with_suite(entry: str, suite: str) -> str:
    """`URI release[-pocket] components` with the release replaced (the security archive spells its pocket
    `-security`, the others `-updates`, `-backports`: all keep their suffix)."""
    uri, release, components = entry.split(None, 2)
    pocket = release.partition("-")[2] if "-" in release else release.partition("/")[2]
    separator = "/" if "/" in release else "-"
    return f"{uri} {suite}{separator + pocket if pocket else ''} {components}"


class PrivateApt:
    """apt-get/apt-cache bound to a state directory that lists only `arch`, from the host's Debian release or
    from another one (`suite`, e.g. trixie for newer packages), through the host's mirrors."""

    def __init__(self, state_dir: Path, arch: str, suite: str | None = None):
        self.state_dir = Path(state_dir)
        self.arch = arch
        self.suite = suite

    def _options(self) -> list[str]:
        s = self.state_dir
        return [
            "-o", f"Dir::State={s}", "-o", f"Dir::State::status={s}/status",
            "-o", f"Dir::Cache={s}/cache", "-o", f"Dir::Etc::SourceList={s}/sources.list",
            "-o", "Dir::Etc::SourceParts=/dev/null", "-o", f"APT::Architecture={self.arch}",
            "-o", f"APT::Architectures::={self.arch}", "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root",
        ]

    def update(self) -> None:
        """Refresh the private package lists; a lagging mirror index is retried, then tolerated if lists exist."""
        for sub in ("lists/partial", "cache/archives/partial"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.state_dir / "status").touch()
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        signed = f" signed-by={keyring}" if Path(keyring).exists() else ""
        (self.state_dir / "sources.list").write_text(
            "".join(f"deb [arch={self.arch}{signed}] {entry}\n" for entry in _host_source_entries(self.suite)))
        for _attempt in range(3):
            proc = subprocess.run(["apt-get", *self._options(), "-q", "update"], capture_output=True, text=True)
            if proc.returncode == 0:
                return
        if not any((self.state_dir / "lists").glob("*_Packages*")):
            raise UserError(f"apt-get update for {self.arch} ({self.suite or 'host release'}) failed:\n"
                            f"{proc.stdout}{proc.stderr}")

    def version(self, package: str) -> str:
        """The candidate version of a package in the private lists."""
        out = subprocess.run(["apt-cache", *self._options(), "policy", package],
                             capture_output=True, text=True).stdout
        match = re.search(r"Candidate:\s*(\S+)", out)
        if not match or match.group(1) == "(none)":
            raise UserError(f"Debian package {package}:{self.arch} not found in the apt sources"
                            + (f" for {self.suite}" if self.suite else ""))
        return match.group(1)

    def depends(self, packages: list[str]) -> list[str]:
        """Packages plus everything they depend on (recursively), as names."""
        out = subprocess.run(
            ["apt-cache", *self._options(), "depends", "--recurse", "--no-recommends", "--no-suggests",
             "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages],
            capture_output=True, text=True, check=True).stdout
        names = {line.strip() for line in out.splitlines() if line and not line.startswith(" ")}
        return sorted(n for n in names if not n.startswith("<"))

    def download(self, packages: list[str], dest: Path) -> list[Path]:
        """Fetch the .deb files of `packages` into dest (already present files are kept)."""
        dest.mkdir(parents=True, exist_ok=True)
        debs = []
        for package in packages:
            version = self.version(package)
            pattern = f"{package}_{version.split(':')[-1]}_*.deb"
            found = sorted(dest.glob(pattern))
            if not found:
                subprocess.run(["apt-get", *self._options(), "-q", "download", f"{package}={version}"],
                               cwd=dest, check=True, capture_output=True)
                found = sorted(dest.glob(pattern))
            if not found:
                raise UserError(f"apt-get download {package}={version} left no {pattern} in {dest}")
            debs.extend(found)
        return debs


def extract(debs: list[Path], root: Path) -> None:
    """Unpack .deb files into root (no maintainer scripts run: a sysroot needs files only)."""
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
