"""Take single files out of Debian source packages, in the exact version of a package installed on the host.

Why: a QEMU plugin must be built against the plugin header of the QEMU that loads it, and Debian 12 ships that
header (include/qemu/qemu-plugin.h) in no binary package. The source package of the installed version has it.
The download goes through a private apt state (like neoncc.targets.debian.PrivateApt) whose only entries are
`deb-src` twins of the host's own apt sources, so the host's apt configuration is never changed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from neoncc.errors import UserError
from neoncc.targets.debian import PrivateApt, _host_source_entries


def installed_source_version(binary_package: str) -> tuple[str, str]:
    """(source package, source version) of an installed binary package.

    The source version is not the binary one when Debian rebuilt the binary alone (a binNMU such as
    `1:7.2+dfsg-7+deb12u18+b3` comes from source `1:7.2+dfsg-7+deb12u18`).
    """
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status} ${source:Package} ${source:Version}", binary_package],
        capture_output=True, text=True)
    fields = proc.stdout.split()
    if proc.returncode != 0 or len(fields) != 3 or fields[0] != "installed":
        raise UserError(f"Debian package {binary_package} is not installed (scripts/setup installs it)")
    return fields[1], fields[2]


class SourceApt(PrivateApt):
    """A private apt state listing the host's mirrors as `deb-src` entries: source packages only."""

    def __init__(self, state_dir: Path):
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                              check=True).stdout.strip()
        super().__init__(state_dir, arch)

    def update_sources(self) -> None:
        """(Re)write the deb-src list from the host's apt sources and fetch its Sources indexes.

        A failure is tolerated when older indexes exist: extract_file then finds out whether they suffice.
        """
        keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
        signed_by = f"[signed-by={keyring}] " if keyring.exists() else ""
        (self.state_dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "status").touch()
        (self.state_dir / "sources.list").write_text(
            "".join(f"deb-src {signed_by}{entry}\n" for entry in _host_source_entries()))
        proc = subprocess.run(["apt-get", *self._options(), "-q", "update"], capture_output=True, text=True)
        if proc.returncode != 0 and not self._has_indexes():
            raise UserError(f"apt-get update (deb-src) failed:\n{proc.stdout}{proc.stderr}")

    def _has_indexes(self) -> bool:
        return any((self.state_dir / "lists").glob("*_Sources*"))

    def extract_file(self, package: str, version: str, member: str, dest: Path) -> Path:
        """Copy `member` (a path inside the patched source tree) of package=version to dest.

        dpkg-source applies Debian's patches, so the file is the one the binary package was built from.
        """
        if not self._has_indexes():
            self.update_sources()
        with tempfile.TemporaryDirectory(dir=self.state_dir) as tmp:
            work = Path(tmp)
            fetch = ["apt-get", *self._options(), "-q", "source", "--download-only", f"{package}={version}"]
            proc = subprocess.run(fetch, cwd=work, capture_output=True, text=True)
            if proc.returncode != 0:
                self.update_sources()  # the lists may predate a security update of the package
                proc = subprocess.run(fetch, cwd=work, capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(f"cannot download Debian source {package}={version} from the host's apt "
                                f"mirrors (deb-src):\n{proc.stdout}{proc.stderr}")
            dsc = next(work.glob("*.dsc"))
            proc = subprocess.run(["dpkg-source", "-x", dsc.name, "tree"], cwd=work, capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(f"dpkg-source -x {dsc.name} failed:\n{proc.stdout}{proc.stderr}")
            source = work / "tree" / member
            if not source.is_file():
                raise UserError(f"{member} is not in Debian source {package}={version}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
        return dest
