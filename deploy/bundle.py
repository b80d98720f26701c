"""What goes to the board, and how it lands there without ever leaving a half-installed bundle, even with
several deploys to one board at once.

Layout under the board's remote_dir:

    store/<sha256>                 verified file contents, named by their SHA-256 (an upload skips what is here)
    store/<sha256>.<token>.part    an upload in progress, under its deploy's own token; a later deploy resumes
                                   it once it has stopped growing, and it is checked before it counts
    bundles/<id>/                  one bundle: hard links into store/ under their role names, plus SHA256SUMS
    current/<model>                symlink to the bundle installed last; switched by an atomic rename
    previous/<model>               the bundle before it, kept runnable
    runs/<token>/                  one deploy's own files: hard links to the contents it uploaded or found, its
                                   SHA256SUMS, and its run's output and statistics; removed when it is done
    lock                           flock(2)ed by `supervise --lock` while bundles/, current/ and previous/ change

Each deploy has a random token. Its files are pinned by hard links in runs/<token>/ from the moment they are
found or uploaded, so a concurrent deploy's pruning (which removes store files nothing else links to) cannot
take them away, and the engine runs from runs/<token>/: what it reads is what this deploy checked, whatever
other deploys install meanwhile.

A bundle's id is the hash of its names and checksums, so the same files make the same bundle and a second
deploy with nothing changed uploads nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from tqdm import tqdm

from deploy.errors import DeployError
from deploy.ssh import Connection, quote
from neoncc.pipeline import content_sha256

CHUNK = 32768


@dataclass
class File:
    name: str
    path: Path
    executable: bool = False
    sha256: str = field(init=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = content_sha256(self.path)
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


PART_SETTLE_S = 2.0      # a .part that has not changed for this long belongs to no running upload
STALE_PART_MIN = 60      # abandoned .part files older than this (minutes) are pruned
STALE_RUN_MIN = 30       # run directories untouched this long, with no engine running, are pruned
LOCK_WAIT_S = 120        # how long an install waits for another deploy's install to finish


class Remote:
    """The deploy directory of one board, over one connection, for one deploy (its own token)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.root = conn.board.remote_dir
        self.board = conn.board.name
        self.token = secrets.token_hex(8)
        self._rundir_made = False

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    @property
    def rundir(self) -> str:
        """This deploy's own directory on the board."""
        return self.path("runs", self.token)

    def prepare(self) -> None:
        dirs = [self.path(d) for d in ("store", "bundles", "current", "previous", "runs")]
        self.conn.run(f"mkdir -p {quote(*dirs)}")

    def _make_rundir(self) -> None:
        if not self._rundir_made:
            self.prepare()
            self.conn.sftp.mkdir(self.rundir, 0o755)
            self._rundir_made = True

    def cleanup(self) -> None:
        """Remove this deploy's run directory (what it pinned stays in store/ while a bundle links to it)."""
        if self._rundir_made and self.conn.transport.is_active():
            try:
                self.conn.run(f"rm -rf {quote(self.rundir)}", check=False, timeout=5)
            except DeployError:
                pass  # the next deploy's pruning removes it

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
        out = self.conn.run(f"sha256sum {quote(path)}", timeout=300, check=False).stdout.split()
        return out[0] if out else ""

    # -- upload -------------------------------------------------------------------------------------------

    def _pin(self, bundle: Bundle) -> list[File]:
        """Hard-link every file whose content store/ already holds into the run directory; returns the files
        still to upload (one per content). A link made is a pin: no pruning can take that content away now."""
        self._make_rundir()
        present = self.store_listing()
        names = {f.sha256: f for f in bundle.files}
        lines = [f"ln -f {quote(self.path('store', f.sha256), posixpath.join(self.rundir, f.name))} 2>/dev/null "
                 f"&& echo {f.sha256}" for f in bundle.files if f.sha256 in present]
        linked = set(self.conn.run("; ".join(lines) + "; true").stdout.split()) if lines else set()
        todo = [names[sha] for sha in dict.fromkeys(f.sha256 for f in bundle.files) if sha not in linked]
        self._pending_links = {f.sha256: [g.name for g in bundle.files if g.sha256 == f.sha256] for f in todo}
        return todo

    def _claim_part(self, f: File, listing: list[paramiko.SFTPAttributes]) -> int:
        """Take over an abandoned partial upload of f's content (renaming it to this deploy's part name, which
        only one deploy can win); returns how many bytes it already holds (0: start afresh)."""
        mine = self._part(f)
        candidates = [a for a in listing if a.filename.startswith(f.sha256 + ".") and a.filename.endswith(".part")
                      and a.filename != posixpath.basename(mine)]
        if not candidates:
            return 0
        best = max(candidates, key=lambda a: a.st_size)
        old = self.path("store", best.filename)
        time.sleep(PART_SETTLE_S)  # a part some running upload still writes keeps changing
        try:
            now = self.conn.sftp.stat(old)
        except FileNotFoundError:
            return 0
        if (now.st_size, now.st_mtime) != (best.st_size, best.st_mtime):
            return 0
        try:
            self.conn.sftp.posix_rename(old, mine)
        except OSError:
            return 0  # another deploy claimed it first
        return min(self.conn.sftp.stat(mine).st_size, f.size)

    def _part(self, f: File) -> str:
        return self.path("store", f"{f.sha256}.{self.token}.part")

    def upload(self, bundle: Bundle, progress: bool = True, on_chunk=None, log=print) -> UploadReport:
        """Send the files the board lacks into store/, each checked on the board before it is renamed in.

        Each upload writes store/<sha256>.<token>.part, a name no other deploy uses. A cut connection leaves
        it; a later deploy takes it over once it has stopped changing and resumes from its size; a resumed
        file whose checksum then disagrees is thrown away and sent again whole. on_chunk(bytes_so_far) is
        called after every chunk (tests use it to cut the connection mid-way).
        """
        started = time.monotonic()
        todo = self._pin(bundle)
        report = UploadReport(skipped=len(bundle.files) - sum(len(self._pending_links[f.sha256]) for f in todo))
        listing = self.conn.sftp.listdir_attr(self.path("store")) if todo else []
        offsets = {f.sha256: self._claim_part(f, listing) for f in todo}
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
                part = self._part(f)
                self._send(f, offset, advance)
                if self.sha256(part) != f.sha256:
                    if offset == 0:
                        self.conn.run(f"rm -f {quote(part)}", check=False)
                        if self.free_bytes() < max(CHUNK * 4, f.size // 100):
                            raise DeployError(f"board {self.board}: disk full in {self.root} while uploading "
                                              f"{f.name} (partial file removed)")
                        raise DeployError(f"board {self.board}: {f.name} arrived with a different SHA-256 than "
                                          "it was sent with; the connection or the board's storage is faulty "
                                          "(the partial file was removed)")
                    bar.clear()
                    log(f"upload: resumed copy of {f.name} did not check out; sending it again whole")
                    self._send(f, 0, lambda n: None)
                    if self.sha256(part) != f.sha256:
                        self.conn.run(f"rm -f {quote(part)}", check=False)
                        raise DeployError(f"board {self.board}: {f.name} arrived corrupted twice")
                self.conn.sftp.chmod(part, 0o755 if f.executable else 0o644)
                # Pin it in the run directory first, then name it in the store: no moment where pruning could
                # take it away.
                links = " && ".join(f"ln -f {quote(part, posixpath.join(self.rundir, name))}"
                                    for name in self._pending_links[f.sha256])
                self.conn.run(links)
                self.conn.sftp.posix_rename(part, self.path("store", f.sha256))
                report.files += len(self._pending_links[f.sha256])
                report.bytes += f.size - offset
        report.seconds = time.monotonic() - started
        return report

    def _send(self, f: File, offset: int, advance) -> None:
        part = self._part(f)
        done = offset
        dst = None
        try:
            with open(f.path, "rb") as src:
                dst = self.conn.sftp.open(part, "ab" if offset else "wb")
                dst.set_pipelined(True)
                src.seek(offset)
                for block in iter(lambda: src.read(CHUNK), b""):
                    dst.write(block)
                    done += len(block)
                    advance(len(block))
                dst.close()
        except KeyboardInterrupt:
            # Closing the file politely waits for every pipelined write's answer; an interrupt must not wait.
            self.conn.transport.close()
            raise
        except (OSError, EOFError, paramiko.SSHException) as err:
            self._upload_failed(f, part, done, err)

    def _upload_failed(self, f: File, part: str, done: int, err: Exception) -> None:
        """Tell a full disk (the partial file is removed to give the space back) from a cut connection."""
        if self.conn.transport.is_active():
            try:
                free = self.free_bytes()
            except DeployError:
                free = None
            if free is not None and free < CHUNK * 4 or "No space left" in str(err):
                self.conn.run(f"rm -f {quote(part)}", check=False)
                raise DeployError(f"board {self.board}: disk full in {self.root} while uploading {f.name} "
                                  f"({done} of {f.size} bytes written; partial file removed)") from None
        if isinstance(err, socket.timeout):
            self.conn.transport.close()
        raise DeployError(f"board {self.board}: upload of {f.name} cut off after {done} of {f.size} bytes "
                          f"({err or type(err).__name__}); rerun to resume it") from None

    # -- install ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self):
        """Hold the deploy directory's lock (flock by this deploy's own `supervise --lock`) for the block.

        The lock holder on the board is `cat`, reading a standard input the host never writes: when the block
        ends, or the host process dies and its SSH session with it, it reads end of file and the lock goes.
        """
        supervise = posixpath.join(self.rundir, "supervise")
        command = (f"exec {quote(supervise)} --lock {quote(self.path('lock'))} {LOCK_WAIT_S} /bin/sh -c "
                   + quote("echo locked; exec cat >/dev/null"))
        conn = self.conn
        try:
            channel = conn.transport.open_session(timeout=conn.board.connect_timeout_s)
            channel.settimeout(LOCK_WAIT_S + 30)
            channel.exec_command(command)
            answer = b""
            while not answer.endswith(b"locked\n"):
                chunk = channel.recv(64)
                if not chunk:
                    err = channel.recv_stderr(4096).decode(errors="replace").strip()
                    raise DeployError(f"board {self.board}: could not take the lock {self.path('lock')}"
                                      + (f": {err}" if err else ""))
                answer += chunk
        except (paramiko.SSHException, EOFError, OSError) as err:
            raise DeployError(f"board {self.board}: connection to {conn.where} lost while taking the deploy "
                              f"lock ({err or type(err).__name__})") from None
        try:
            yield
        finally:
            try:
                channel.shutdown_write()  # cat ends, the lock goes; wait for that before the channel closes
                channel.status_event.wait(timeout=10)
            except (paramiko.SSHException, EOFError, OSError):
                pass
            channel.close()

    def install(self, bundle: Bundle) -> str:
        """Verify the run directory's files on the board, then make the bundle current atomically.

        Returns the bundle's directory. The previous current bundle stays in place, and runnable, until the new
        one has been verified; it becomes previous/<model>. bundles/, current/, previous/ and pruning change
        only under the board-side lock.
        """
        self._make_rundir()
        with self.conn.sftp.open(posixpath.join(self.rundir, "SHA256SUMS"), "w") as out:
            out.write(bundle.sha256sums())
        self.verify(bundle, self.rundir)
        final = self.path("bundles", bundle.id)
        with self.locked():
            if not self._exists(final):
                staging = f"{final}.{self.token}.tmp"
                links = " && ".join(f"ln {quote(posixpath.join(self.rundir, name), posixpath.join(staging, name))}"
                                    for name in [f.name for f in bundle.files] + ["SHA256SUMS"])
                self.conn.run(f"rm -rf {quote(staging)} && mkdir -p {quote(staging)} && {links}")
                self.conn.sftp.posix_rename(staging, final)
            self._switch(bundle.model, final)
        return final

    def verify(self, bundle: Bundle, directory: str) -> None:
        """`sha256sum -c` on the board; a damaged file is dropped from store/ so the next run sends it again."""
        result = self.conn.run(f"cd {quote(directory)} && sha256sum -c SHA256SUMS", check=False, timeout=300)
        if result.status == 0:
            return
        bad = re.findall(r"^(.+?): FAILED", result.stdout, re.MULTILINE) or ["(unreadable SHA256SUMS)"]
        damaged = [f for f in bundle.files if f.name in bad]
        paths = [self.path("store", f.sha256) for f in damaged] + [self.path("bundles", bundle.id)]
        if directory != self.rundir:
            paths.append(directory)
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
        tmp = f"{link}.{self.token}.new"
        self.conn.run(f"rm -f {quote(tmp)}")
        self.conn.sftp.symlink(target, tmp)
        self.conn.sftp.posix_rename(tmp, link)

    def _switch(self, model: str, final: str) -> None:
        """Under the lock: repoint current/<model> (and previous/<model>), then prune."""
        target = posixpath.join("..", "bundles", posixpath.basename(final))
        old = self._readlink(self.path("current", model))
        if old != target:
            self._relink(self.path("current", model), target)
            if old is not None:
                self._relink(self.path("previous", model), old)
        self.prune()

    def prune(self) -> None:
        """Under the lock: drop bundles no current/ or previous/ link names, run directories of deploys that
        are gone, abandoned partial uploads, then store files nothing links to any more."""
        kept = {posixpath.basename(t) for t in
                (self._readlink(self.path(d, m)) for d in ("current", "previous")
                 for m in self.conn.sftp.listdir(self.path(d))) if t}
        stale = [self.path("bundles", b) for b in self.conn.sftp.listdir(self.path("bundles")) if b not in kept]
        if stale:
            self.conn.run(f"rm -rf {quote(*stale)}")
        runs = quote(self.path("runs"))
        # A run directory is stale once untouched for a while with no supervise of its own alive: its deploy was
        # killed (a live deploy removes its own directory when it is done).
        self.conn.run(
            f"find {runs} -mindepth 1 -maxdepth 1 -type d -mmin +{STALE_RUN_MIN} ! -name {quote(self.token)} "
            "-exec sh -c 'kill -0 \"$(cat \"$1/supervise.pid\" 2>/dev/null)\" 2>/dev/null || rm -rf \"$1\"' sh {} \\;",
            check=False)
        store = quote(self.path("store"))
        self.conn.run(f"find {store} -type f -name '*.part' -mmin +{STALE_PART_MIN} -exec rm -f {{}} +", check=False)
        # A store file with one link is in no bundle and no run directory any more.
        self.conn.run(f"find {store} -type f -links 1 ! -name '*.part' -exec rm -f {{}} +")
