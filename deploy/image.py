"""An emulated board's image: Debian's kernel and a small initramfs built from Debian packages of the board's
target (armhf for armv7 boards, arm64 for aarch64 ones: the toolchain file whose uname_machine lists the board's
arch says which, with its board_image: section).

The initramfs holds busybox, dropbear (SSH), openssh's sftp-server (dropbear has no SFTP subsystem), the
libraries they load, and the kernel modules the board needs (virtio network and RNG are modules in the armmp
kernel). No compiler and no ACL: like a bare board, it runs only what a bundle brings.

Two keys are made once per installation and kept under .cache/board/: the client key that logs in (its public
half goes into the image) and the board's host key, generated on this host so it can be pinned before the
board ever boots.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from deploy import BOARD_CACHE
from deploy.errors import DeployError
from neoncc import PROJECT_ROOT
from neoncc.errors import UserError
from neoncc.targets import debian, toolchain

APT_ROOT = PROJECT_ROOT / ".cache" / "apt"   # one private apt state per Debian architecture: apt/<arch>/
HOST_KEY = BOARD_CACHE / "ssh_host_ed25519_key"


@dataclass(frozen=True)
class Arch:
    """What differs between boards of different targets, from the target's toolchain file."""

    target: str
    debian_arch: str
    qemu_user: str
    readelf: str
    multiarch: str
    loader: str

    @classmethod
    def of(cls, board) -> "Arch":
        try:
            spec = toolchain.for_machine(board.arch, f"{board.source}: arch")
        except UserError as err:
            raise DeployError(str(err)) from None
        if "board_image" not in spec.spec:
            raise DeployError(f"board {board.name}: toolchains/{spec.name}.yaml has no board_image: section, so no "
                              "emulated board of that target can be built")
        s = spec.spec
        return cls(spec.name, s["sysroot"]["debian_arch"], s["qemu_user"], s["compiler_prefix"] + "readelf",
                   s["board_image"]["multiarch"], s["board_image"]["loader"])

    @property
    def apt_state(self) -> Path:
        return APT_ROOT / self.debian_arch

    @property
    def debs(self) -> Path:
        return self.apt_state / "debs"

# The programs the board runs, as (path in the packages, path on the board).
PROGRAMS = [
    ("bin/busybox", "bin/busybox"),
    ("usr/sbin/dropbear", "usr/sbin/dropbear"),
    ("usr/lib/openssh/sftp-server", "usr/lib/sftp-server"),  # where dropbear looks for it
]

INIT = r"""#!/bin/busybox sh
# PID 1 of the emulated board: mount, load the virtio drivers, online every core, bring up the network, then
# hand over to busybox init, which reaps orphans and respawns the SSH server.
/bin/busybox --install -s
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
data_mb=$(sed -n 's/.*neoncc\.data_mb=\([0-9]*\).*/\1/p' /proc/cmdline)
mount -t tmpfs -o size=${data_mb:-256}m,mode=0755 data /data
while read -r module; do insmod /lib/modules/$module.ko || echo "init: insmod $module failed"; done < /etc/modules
# The kernel boots with maxcpus= (bringing 4 emulated cores up on a 2-core host is slow); online the rest now.
for cpu in /sys/devices/system/cpu/cpu[0-9]*; do
    [ -e $cpu/online ] && [ "$(cat $cpu/online)" = 0 ] && echo 1 > $cpu/online
done
hostname zuluko
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
echo "init: $(nproc) cores, $(sed -n 's/MemTotal: *//p' /proc/meminfo) memory, starting sshd"
exec /sbin/init
"""

INITTAB = """\
::respawn:/usr/sbin/dropbear -F -E -s -j -k -r /etc/dropbear/dropbear_ed25519_host_key -p 22
::shutdown:/bin/umount -a -r
"""


@dataclass
class Image:
    """A built image: the kernel and initramfs qemu boots, and the host key the board presents."""

    dir: Path

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.gz"

    @property
    def host_public_key(self) -> str:
        return HOST_KEY.with_suffix(".pub").read_text().strip()


def ensure_client_key(path: Path) -> str:
    """The installation's own login key (OpenSSH format, 0600), made on first use; returns its public line."""
    pub = path.with_name(path.name + ".pub")
    if not path.is_file():
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, private)
        _atomic_write(pub, public + b" neoncc-board\n")
    return pub.read_text().strip()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.rename(path)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.rename(path)


def _ensure_host_key(rootfs: Path, arch: Arch) -> str:
    """The board's host key in dropbear's format, made once on this host with the board's own dropbearkey."""
    pub = HOST_KEY.with_suffix(".pub")
    if not (HOST_KEY.is_file() and pub.is_file()):
        HOST_KEY.parent.mkdir(parents=True, exist_ok=True)
        HOST_KEY.unlink(missing_ok=True)
        dropbearkey = [arch.qemu_user, "-L", str(rootfs), str(rootfs / "usr/bin/dropbearkey")]
        subprocess.run([*dropbearkey, "-t", "ed25519", "-f", str(HOST_KEY)], check=True, capture_output=True)
        out = subprocess.run([*dropbearkey, "-y", "-f", str(HOST_KEY)], check=True, capture_output=True,
                             text=True).stdout
        line = next((ln for ln in out.splitlines() if ln.startswith("ssh-ed25519 ")), None)
        if line is None:
            raise DeployError(f"dropbearkey -y printed no public key for {HOST_KEY}:\n{out}")
        _atomic_write(pub, (" ".join(line.split()[:2]) + "\n").encode())
    return pub.read_text().strip()


def _download(apt: debian.PrivateApt, packages: list[str], dest: Path) -> list[Path]:
    """PrivateApt.download, tolerating its epoch bug: apt-get names `1:2.0` files `1%3a2.0`, which it misses."""
    debs = []
    for package in packages:
        try:
            debs += apt.download([package], dest)
        except UserError:
            for deb in dest.glob(f"{package}_*%3a*.deb"):
                deb.rename(deb.with_name(re.sub(r"_\d+%3a", "_", deb.name)))
            debs += apt.download([package], dest)
    return debs


def _versions(apt: debian.PrivateApt, packages: list[str]) -> dict[str, str]:
    try:
        return {p: apt.version(p) for p in packages}
    except UserError:
        apt.update()  # no lists yet, or too old to know a package
        return {p: apt.version(p) for p in packages}


def _kernel_package(apt: debian.PrivateApt, meta: str) -> str:
    """The versioned kernel package a metapackage such as linux-image-armmp-lpae points at."""
    flavour = meta.removeprefix("linux-image-")
    names = [n for n in apt.depends([meta]) if re.fullmatch(rf"linux-image-\d[\w.+-]*-{re.escape(flavour)}", n)]
    if not names:
        raise DeployError(f"Debian package {meta} depends on no versioned linux-image-*-{flavour}")
    return sorted(names)[-1]


def _needed(elf: Path, arch: Arch) -> list[str]:
    out = subprocess.run([arch.readelf, "-d", str(elf)], check=True, capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", out)


def _library_closure(rootfs: Path, programs: list[Path], arch: Arch) -> list[Path]:
    """Every shared library the programs load, found in the unpacked packages (paths relative to rootfs)."""
    search = [f"lib/{arch.multiarch}", f"usr/lib/{arch.multiarch}", "lib", "usr/lib"]
    found: dict[str, Path] = {}
    todo = list(programs)
    while todo:
        elf = todo.pop()
        for soname in _needed(elf, arch):
            if soname in found:
                continue
            hit = next((rootfs / d / soname for d in search if (rootfs / d / soname).exists()), None)
            if hit is None:
                raise DeployError(f"board image: {elf.name} needs {soname}, which no listed package provides "
                                  "(add its package to emulator.packages in the board file)")
            found[soname] = hit.relative_to(rootfs)
            todo.append(hit.resolve())
    return sorted(found.values())


def _module_order(kernel_root: Path, wanted: list[str]) -> tuple[str, list[Path]]:
    """The kernel release and the .ko files to insmod, dependencies first (read from each module's modinfo). A
    module the kernel has built in (modules.builtin: virtio_mmio in arm64's) needs no file."""
    releases = sorted(p.name for p in (kernel_root / "lib/modules").iterdir())
    release = releases[-1]
    index = {p.stem.replace("-", "_"): p for p in (kernel_root / "lib/modules" / release).rglob("*.ko")}
    builtin_list = kernel_root / "lib/modules" / release / "modules.builtin"
    builtin = {Path(line).stem.replace("-", "_") for line in builtin_list.read_text().split()} \
        if builtin_list.is_file() else set()
    order: list[Path] = []

    def visit(name: str) -> None:
        key = name.replace("-", "_")
        if key in builtin and key not in index:
            return
        if key not in index:
            raise DeployError(f"board image: kernel {release} has no module {name}")
        path = index[key]
        if path in order:
            return
        depends = re.search(rb"\x00depends=([^\x00]*)\x00", b"\x00" + path.read_bytes())
        for dep in filter(None, (depends.group(1).decode().split(",") if depends else [])):
            visit(dep)
        order.append(path)

    for name in wanted:
        visit(name)
    return release, order


def _cpio_newc(root: Path, extra_nodes: list[tuple[str, int, int, int]]) -> bytes:
    """A newc cpio archive of root (all files owned by root, fixed times) plus device nodes (name, mode, major,
    minor) such as dev/console, which the kernel needs before devtmpfs is mounted and a user cannot mknod."""
    out = io.BytesIO()
    inode = 1

    def entry(name: str, mode: int, data: bytes = b"", nlink: int = 1, rdev: tuple[int, int] = (0, 0)) -> None:
        nonlocal inode
        fields = [inode, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\x00"
        out.write(header + b"\x00" * (-len(header) % 4))
        out.write(data + b"\x00" * (-len(data) % 4))
        inode += 1

    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        rel = base.relative_to(root).as_posix()
        if rel != ".":
            entry(rel, stat.S_IFDIR | stat.S_IMODE(base.stat().st_mode), nlink=2)
        for name in sorted(filenames) + sorted(d for d in dirnames if (base / d).is_symlink()):
            path = base / name
            st = path.lstat()
            arcname = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                entry(arcname, st.st_mode, os.readlink(path).encode())
            else:
                entry(arcname, stat.S_IFREG | stat.S_IMODE(st.st_mode), path.read_bytes())
    for name, mode, major, minor in extra_nodes:
        entry(name, stat.S_IFCHR | mode, rdev=(major, minor))
    entry("TRAILER!!!", 0)
    return out.getvalue()


def _install(src: Path, dest: Path, mode: int | None = None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    os.chmod(dest, mode if mode is not None else stat.S_IMODE(src.stat().st_mode))


def _assemble(tree: Path, rootfs: Path, kernel_root: Path, emulator: dict, client_public: str, arch: Arch) -> str:
    """Lay out the initramfs in tree; returns the kernel release."""
    for d in ["proc", "sys", "dev", "tmp", "data", "run", "etc/dropbear", "lib/modules", "root/.ssh",
              "bin", "sbin", "usr/bin", "usr/sbin", "usr/lib"]:
        (tree / d).mkdir(parents=True, exist_ok=True)
    (tree / "var").mkdir()
    (tree / "var/run").symlink_to("../run")
    programs = []
    for src, dest in PROGRAMS:
        _install(rootfs / src, tree / dest, 0o755)
        programs.append(rootfs / src)
    for lib in _library_closure(rootfs, programs, arch):
        _install((rootfs / lib).resolve(), tree / lib, 0o755)
    # Programs ask for /lib/<loader> (ld-linux-armhf.so.3, ld-linux-aarch64.so.1); Debian keeps it in the multiarch
    # directory.
    if not (tree / "lib" / arch.loader).exists():
        (tree / "lib" / arch.loader).symlink_to(f"{arch.multiarch}/{arch.loader}")
    release, modules = _module_order(kernel_root, emulator["modules"])
    for module in modules:
        _install(module, tree / "lib/modules" / module.name, 0o644)
    (tree / "etc/modules").write_text("".join(m.stem + "\n" for m in modules))
    (tree / "init").write_text(INIT)
    os.chmod(tree / "init", 0o755)
    (tree / "etc/inittab").write_text(INITTAB)
    (tree / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (tree / "etc/group").write_text("root:x:0:\n")
    (tree / "etc/shells").write_text("/bin/sh\n")
    _install(HOST_KEY, tree / "etc/dropbear/dropbear_ed25519_host_key", 0o600)
    (tree / "root/.ssh/authorized_keys").write_text(client_public + "\n")
    os.chmod(tree / "root", 0o700)
    os.chmod(tree / "root/.ssh", 0o700)
    os.chmod(tree / "root/.ssh/authorized_keys", 0o600)
    return release


def _image_for(request: dict) -> Image:
    """image/<target>-<hash of the recipe>: each target's boards keep their own image."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]
    return Image(BOARD_CACHE / "image" / f"{request['target']}-{digest}")


def ensure(board, log=print) -> Image:
    """The board's image, built when missing or when its recipe (packages, modules, keys) changed."""
    emulator = board.emulator
    if emulator is None:
        raise DeployError(f"board {board.name} ({board.source}) is not an emulated board: no emulator: section")
    arch = Arch.of(board)
    client_public = ensure_client_key(board.key_file)
    host_pub = HOST_KEY.with_suffix(".pub")
    # What the image is made of, as asked; the Debian versions it resolved to are recorded in recipe.json.
    request = {"target": arch.target, "kernel_package": emulator["kernel_package"], "packages": emulator["packages"],
               "modules": emulator["modules"], "client_key": client_public,
               "host_key": host_pub.read_text().strip() if host_pub.is_file() else None,
               "layout": hashlib.sha256((INIT + INITTAB + repr(PROGRAMS)).encode()).hexdigest()}
    image = _image_for(request)
    if request["host_key"] is not None and image.initrd.is_file() and image.kernel.is_file():
        os.chmod(image.initrd, 0o600)  # images made before the initramfs was written private
        return image

    apt = debian.PrivateApt(arch.apt_state, arch.debian_arch)
    versions = _versions(apt, [emulator["kernel_package"], *emulator["packages"]])
    kernel_package = _kernel_package(apt, emulator["kernel_package"])
    log(f"board image: building from Debian {arch.debian_arch} packages ({kernel_package}, "
        f"{', '.join(emulator['packages'])})")
    debs = _download(apt, emulator["packages"], arch.debs)
    kernel_debs = _download(apt, [kernel_package], arch.debs)
    (BOARD_CACHE / "image").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BOARD_CACHE / "image", prefix=".build-") as tmp:
        work = Path(tmp)
        rootfs, kernel_root, tree = work / "packages", work / "kernel", work / "initramfs"
        debian.extract(debs, rootfs)
        debian.extract(kernel_debs, kernel_root)
        request["host_key"] = _ensure_host_key(rootfs, arch)
        image = _image_for(request)
        release = _assemble(tree, rootfs, kernel_root, emulator, client_public, arch)
        out = work / "out"
        out.mkdir()
        shutil.copyfile(kernel_root / "boot" / f"vmlinuz-{release}", out / "vmlinuz")
        archive = _cpio_newc(tree, [("dev/console", 0o600, 5, 1), ("dev/null", 0o666, 1, 3)])
        # The initramfs holds the board's private host key: readable by this user only.
        fd = os.open(out / "initrd.gz", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(archive)
        recipe = {**request, "kernel": kernel_package, "kernel_release": release, "versions": versions}
        (out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        shutil.rmtree(image.dir, ignore_errors=True)
        out.rename(image.dir)
    # Images of this target's older recipes are never booted again (nor those made before images were per target,
    # named by the hash alone); other targets' images stay.
    targets = [p.stem for p in toolchain.TOOLCHAIN_DIR.glob("*.yaml")]
    for old in (BOARD_CACHE / "image").iterdir():
        if old == image.dir or old.name.startswith("."):
            continue
        if old.name.startswith(f"{arch.target}-") or not any(old.name.startswith(f"{t}-") for t in targets):
            shutil.rmtree(old, ignore_errors=True)
    log(f"board image: {image.dir.relative_to(PROJECT_ROOT)} (initramfs {image.initrd.stat().st_size // 1024} KiB)")
    return image
