"""What goes to the board, and how it lands there without ever leaving a half-installed bundle.

Layout under the board's remote_dir:

    store/<sha256>         verified file contents, named by their SHA-256 (an upload skips what is here)
    store/<sha256>.part    an upload in progress; a rerun resumes it, and it is checked before it counts
    bundles/<id>/          one bundle: hard links into store/ under their role names, plus SHA256SUMS
    current/<model>        symlink to the bundle that runs; switched by an atomic rename
    previous/<model>       the bundle before it, kept runnable
    runs/<model>/          the last run's output and statistics

A bundle's id is the hash of its names and checksums, so the same files make the same bundle and a second
deploy with nothing changed uploads nothing and links nothing.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from tqdm import tqdm

from deploy.errors import DeployError
from deploy.ssh import Connection, quote

CHUNK = 32768


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class File:
    name: str
    path: Path
    executable: bool = False
    sha256: str = field(init=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = sha256_file(self.path)
        self.size = self.path.stat().st_size


@dataclass
class Bundle:
    """Files that go to the board together, under the name `model` on the board."""

    model: str
    files: list[File]

    @property
    def id(self) -> str:
        return hashlib.sha256(self.sha256sums().encode()).hexdigest()[:16]

    def sha256sums(self) -> str:
        return "".join(f"{f.sha256}  {f.name}\n" for f in sorted(self.files, key=lambda f: f.name))

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class UploadReport:
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    resumed: int = 0
    seconds: float = 0.0


class Remote:
    """The deploy directory of one board, over one connection."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.root = conn.board.remote_dir
        self.board = conn.board.name

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def prepare(self) -> None:
        dirs = [self.path(d) for d in ("store", "bundles", "current", "previous", "runs")]
        self.conn.run(f"mkdir -p {quote(*dirs)}")

    def store_listing(self) -> dict[str, int]:
        return {a.filename: a.st_size for a in self.conn.sftp.listdir_attr(self.path("store"))}

    def missing(self, bundle: Bundle, present: dict[str, int] | None = None) -> list[File]:
        """Files whose content is not on the board yet (the same content under any name counts)."""
        present = self.store_listing() if present is None else present
        seen: set[str] = set()
        todo = []
        for f in bundle.files:
            if f.sha256 not in present and f.sha256 not in seen:
                todo.append(f)
                seen.add(f.sha256)
        return todo

    def free_bytes(self) -> int:
        """Space left where the bundles go (`df -P -k`, which busybox and coreutils both print alike)."""
        out = self.conn.run(f"df -P -k {quote(self.root)}").stdout.strip().splitlines()
        try:
            return int(out[-1].split()[3]) * 1024
        except (IndexError, ValueError):
            raise DeployError(f"board {self.board}: cannot read free space from `df -P -k {self.root}`: "
                              f"{out}") from None

    def sha256(self, path: str) -> str:
        out = self.conn.run(f"sha256sum {quote(path)}", timeout=300).stdout.split()
        return out[0] if out else ""

    # -- upload -------------------------------------------------------------------------------------------

    def upload(self, bundle: Bundle, progress: bool = True, on_chunk=None, log=print) -> UploadReport:
        """Send the files the board lacks into store/, each checked on the board before it is renamed in.

        A cut connection leaves store/<sha>.part, which the next run resumes from its size; a resumed file
        whose checksum then disagrees is thrown away and sent again whole. on_chunk(bytes_so_far) is called
        after every chunk (tests use it to cut the connection mid-way).
        """
        started = time.monotonic()
        present = self.store_listing()
        todo = self.missing(bundle, present)
        report = UploadReport(skipped=len(bundle.files) - len(todo))
        offsets = {f.sha256: min(present.get(f.sha256 + ".part", 0), f.size) for f in todo}
        total = sum(f.size - offsets[f.sha256] for f in todo)
        sent = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"upload to {self.board}",
                  disable=not progress or not todo, leave=False) as bar:

            def advance(n: int) -> None:
                nonlocal sent
                sent += n
                bar.update(n)
                if on_chunk is not None:
                    on_chunk(sent)

            for f in todo:
                offset = offsets[f.sha256]
                report.resumed += offset > 0
                self._send(f, offset, advance)
                if self.sha256(self.path("store", f.sha256 + ".part")) != f.sha256:
                    if offset == 0:
                        raise DeployError(f"board {self.board}: {f.name} arrived with a different SHA-256 than "
                                          "it was sent with; the connection or the board's storage is faulty")
                    bar.clear()
                    log(f"upload: resumed copy of {f.name} did not check out; sending it again whole")
                    self._send(f, 0, lambda n: None)
                    if self.sha256(self.path("store", f.sha256 + ".part")) != f.sha256:
                        raise DeployError(f"board {self.board}: {f.name} arrived corrupted twice")
                part = self.path("store", f.sha256 + ".part")
                self.conn.sftp.chmod(part, 0o755 if f.executable else 0o644)
                self.conn.sftp.posix_rename(part, self.path("store", f.sha256))
                report.files += 1
                report.bytes += f.size - offset
        report.seconds = time.monotonic() - started
        return report

    def _send(self, f: File, offset: int, advance) -> None:
        part = self.path("store", f.sha256 + ".part")
        done = offset
        try:
            with open(f.path, "rb") as src, self.conn.sftp.open(part, "ab" if offset else "wb") as dst:
                dst.set_pipelined(True)
                src.seek(offset)
                for block in iter(lambda: src.read(CHUNK), b""):
                    dst.write(block)
                    done += len(block)
                    advance(len(block))
        except (OSError, EOFError, paramiko.SSHException) as err:
            self._upload_failed(f, part, done, err)

    def _upload_failed(self, f: File, part: str, done: int, err: Exception) -> None:
        """Tell a full disk (the partial file is removed to give the space back) from a cut connection."""
        if self.conn.transport.is_active():
            try:
                free = self.free_bytes()
            except DeployError:
                free = None
            if free is not None and free < CHUNK * 4:
                self.conn.run(f"rm -f {quote(part)}", check=False)
                raise DeployError(f"board {self.board}: disk full in {self.root} while uploading {f.name} "
                                  f"({done} of {f.size} bytes written; partial file removed)") from None
        raise DeployError(f"board {self.board}: upload of {f.name} cut off after {done} of {f.size} bytes "
                          f"({err or type(err).__name__}); rerun to resume it") from None

    # -- install ------------------------------------------------------------------------------------------

    def install(self, bundle: Bundle) -> str:
        """Link the bundle from store/, verify every checksum on the board, then make it current atomically.

        Returns the bundle's directory. The previous current bundle stays in place, and runnable, until the new
        one has been verified; it becomes previous/<model>.
        """
        final = self.path("bundles", bundle.id)
        if not self._exists(final):
            staging = final + ".tmp"
            links = " && ".join(f"ln {quote(self.path('store', f.sha256), posixpath.join(staging, f.name))}"
                                for f in bundle.files)
            self.conn.run(f"rm -rf {quote(staging)} && mkdir -p {quote(staging)} && {links}")
            with self.conn.sftp.open(posixpath.join(staging, "SHA256SUMS"), "w") as out:
                out.write(bundle.sha256sums())
            self.verify(bundle, staging)
            self.conn.sftp.posix_rename(staging, final)
        else:
            self.verify(bundle, final)
        self._switch(bundle.model, final)
        return final

    def verify(self, bundle: Bundle, directory: str) -> None:
        """`sha256sum -c` on the board; a damaged file is dropped from store/ so the next run sends it again."""
        result = self.conn.run(f"cd {quote(directory)} && sha256sum -c SHA256SUMS", check=False, timeout=300)
        if result.status == 0:
            return
        bad = re.findall(r"^(.+?): FAILED", result.stdout, re.MULTILINE) or ["(unreadable SHA256SUMS)"]
        damaged = [f for f in bundle.files if f.name in bad]
        paths = [self.path("store", f.sha256) for f in damaged] + [directory]
        self.conn.run(f"rm -rf {quote(*paths)}", check=False)
        raise DeployError(f"board {self.board}: checksum mismatch on the board for {', '.join(bad)}; nothing was "
                          "switched, the damaged copies were removed, rerun to upload them again")

    def _exists(self, path: str) -> bool:
        try:
            self.conn.sftp.lstat(path)
            return True
        except FileNotFoundError:
            return False

    def _readlink(self, path: str) -> str | None:
        try:
            return self.conn.sftp.readlink(path)
        except (FileNotFoundError, OSError):
            return None

    def _relink(self, link: str, target: str) -> None:
        """Point link at target with one rename(2): there is no moment without a valid link."""
        tmp = link + ".new"
        self.conn.run(f"rm -f {quote(tmp)}")
        self.conn.sftp.symlink(target, tmp)
        self.conn.sftp.posix_rename(tmp, link)

    def _switch(self, model: str, final: str) -> None:
        target = posixpath.join("..", "bundles", posixpath.basename(final))
        old = self._readlink(self.path("current", model))
        if old == target:
            return
        self._relink(self.path("current", model), target)
        if old is not None:
            self._relink(self.path("previous", model), old)
        self.prune()

    def prune(self) -> None:
        """Drop bundles no current/ or previous/ link names, then store files no bundle links to."""
        kept = {posixpath.basename(t) for t in
                (self._readlink(self.path(d, m)) for d in ("current", "previous")
                 for m in self.conn.sftp.listdir(self.path(d))) if t}
        stale = [self.path("bundles", b) for b in self.conn.sftp.listdir(self.path("bundles")) if b not in kept]
        if stale:
            self.conn.run(f"rm -rf {quote(*stale)}")
        # A store file with one link is in no bundle any more; .part files of finished uploads are gone already.
        self.conn.run(f"find {quote(self.path('store'))} -type f -links 1 ! -name '*.part' -exec rm -f {{}} +")
