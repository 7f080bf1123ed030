"""Base images made from this machine's Debian packages, for `dockyard image bootstrap`.

busybox: Debian's busybox-static as /bin/busybox, one symlink per applet, the
directories and /etc files of the official busybox image. Its tar is
deterministic (sorted entries, owner root, fixed mtime, GNU format without
PAX times), so every build with the same busybox gives the same layer digest.

debian: mmdebstrap (or debootstrap) of a suite from the Debian mirror apt is
configured with, as a tar; SOURCE_DATE_EPOCH pins the times it can.

Both are built on the client, like `docker import`'s tarball, and sent to the
daemon over the API: nothing here needs a registry.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
# Fixed timestamp for every entry: the day of the seed article (2013-08-25).
MTIME = 1377388800
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX_CHANGES = [f"ENV {PATH_ENV}", 'CMD ["sh"]']
DEBIAN_CHANGES = [f"ENV {PATH_ENV}", 'CMD ["bash"]']
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# The same accounts as the official busybox image, so `-u daemon`, `-u nobody`
# and numeric ids resolve the way users expect.
PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
nobody:x:65534:
"""
SHADOW = "".join(f"{line.split(':')[0]}:*:10933:0:99999:7:::\n" for line in PASSWD.splitlines())
NSSWITCH = "hosts: files dns\nnetworks: files\n"

DIRS: dict[str, int] = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "lib": 0o755,
    "proc": 0o755,
    "root": 0o700,
    "sbin": 0o755,
    "sys": 0o755,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "var": 0o755,
    "var/spool": 0o755,
    "var/spool/mail": 0o755,
    "var/www": 0o755,
}


class BootstrapError(Exception):
    """A base image cannot be made here (missing tool, failed build)."""


def log(msg: str) -> None:
    print(f"bootstrap: {msg}", file=sys.stderr, flush=True)


def is_static_elf(path: Path) -> bool:
    """True when the ELF has no PT_INTERP, i.e. needs no libc inside the image."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
                return False
            endian = "<" if head[5] == 1 else ">"
            (phoff,) = struct.unpack_from(endian + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def apt_install(package: str) -> None:
    """Install a Debian package (root only): how the base images' tools arrive."""
    if os.geteuid() != 0:
        raise BootstrapError(f"{package} is not installed; run as root to apt-get install it")
    log(f"installing {package} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        if subprocess.run(cmd, env=env, stdout=sys.stderr).returncode != 0:
            raise BootstrapError(f"`{' '.join(cmd)}` failed")


def ensure_busybox(path: Path = BUSYBOX) -> Path:
    if not is_static_elf(path):
        apt_install("busybox-static")
        if not is_static_elf(path):
            raise BootstrapError(f"{path} is not a static binary after installing busybox-static")
    return path


def applets(busybox: Path) -> list[str]:
    out = subprocess.run(
        [str(busybox), "--list"], check=True, capture_output=True, text=True
    ).stdout
    names = {n.strip() for n in out.split() if n.strip()}
    # linuxrc is init for initramfs images, not an applet a container wants in /bin.
    names.discard("linuxrc")
    names.discard("busybox")
    return sorted(n for n in names if "/" not in n)


def busybox_rootfs(busybox: Path = BUSYBOX) -> bytes:
    """The rootfs tar, built in memory so no root-owned tree is needed on disk."""
    entries: list[tarfile.TarInfo] = []
    data: dict[str, bytes] = {}

    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = MTIME
        return ti

    for d, mode in DIRS.items():
        entries.append(info(d, tarfile.DIRTYPE, mode))
    binary = busybox.read_bytes()
    bb = info("bin/busybox", tarfile.REGTYPE, 0o755)
    bb.size = len(binary)
    entries.append(bb)
    data["bin/busybox"] = binary
    for name in applets(busybox):
        link = info(f"bin/{name}", tarfile.SYMTYPE, 0o777)
        link.linkname = "busybox"  # relative: resolves inside the container's root
        entries.append(link)
    env_link = info("usr/bin/env", tarfile.SYMTYPE, 0o777)
    env_link.linkname = "../../bin/busybox"  # for `#!/usr/bin/env sh` scripts
    entries.append(env_link)
    for name, text, mode in (
        ("etc/passwd", PASSWD, 0o644),
        ("etc/group", GROUP, 0o644),
        ("etc/shadow", SHADOW, 0o600),
        ("etc/nsswitch.conf", NSSWITCH, 0o644),
    ):
        ti = info(name, tarfile.REGTYPE, mode)
        data[name] = text.encode()
        ti.size = len(data[name])
        entries.append(ti)

    buf = io.BytesIO()
    # GNU format and no PAX headers: PAX would add per-run attributes (atime...).
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for ti in sorted(entries, key=lambda t: t.name):
            payload = data.get(ti.name)
            tar.addfile(ti, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def configured_mirror(
    sources: tuple[str, ...] = ("/etc/apt/sources.list.d", "/etc/apt/sources.list"),
) -> str:
    """The Debian mirror apt uses here (deb822 `URIs:` or one-line `deb URL`)."""
    files: list[Path] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            files += sorted(p.glob("*.sources")) + sorted(p.glob("*.list"))
        elif p.is_file():
            files.append(p)
    for f in files:
        try:
            lines = f.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.strip()
            url = ""
            if line.startswith("URIs:"):
                url = line.split(":", 1)[1].split()[0] if line.split(":", 1)[1].split() else ""
            elif line.startswith("deb "):
                words = [w for w in line.split()[1:] if not w.startswith("[")]
                url = words[0] if words else ""
            if url and "security" not in url and not url.endswith("-security"):
                return url.rstrip("/")
    return DEFAULT_MIRROR


def without_device_nodes(src: Path, dest: Path) -> None:
    """Copy a rootfs tar without its /dev nodes: the runtime gives a container its
    /dev, the official images ship none, and `load` refuses device nodes in an
    archive, so an image that had them could not be saved and loaded back."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            if member.ischr() or member.isblk():
                continue
            tout.addfile(member, tin.extractfile(member) if member.isreg() else None)


def debian_rootfs(suite: str, out: Path, *, mirror: str, variant: str, include: list[str]) -> None:
    """Write a rootfs tar of Debian `suite` to `out` (mmdebstrap, else debootstrap),
    without device nodes."""
    raw = out.with_name(out.name + ".raw")
    try:
        _debian_rootfs(suite, raw, mirror=mirror, variant=variant, include=include)
        without_device_nodes(raw, out)
    finally:
        raw.unlink(missing_ok=True)


def _debian_rootfs(suite: str, out: Path, *, mirror: str, variant: str, include: list[str]) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(MTIME), "DEBIAN_FRONTEND": "noninteractive"}
    if shutil.which("mmdebstrap") is None and shutil.which("debootstrap") is None:
        apt_install("mmdebstrap")
    if shutil.which("mmdebstrap") is not None:
        cmd = ["mmdebstrap", f"--variant={variant}", "--format=tar"]
        if include:
            cmd.append("--include=" + ",".join(include))
        # The apt lists and caches mean nothing in an image (as the official one).
        cmd += ['--aptopt=Acquire::Languages "none"', "--dpkgopt=path-exclude=/usr/share/doc/*"]
        cmd += ['--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*']
        cmd += [suite, str(out), mirror]
        log(" ".join(cmd))
        if subprocess.run(cmd, env=env, stdout=sys.stderr).returncode != 0:
            raise BootstrapError(f"mmdebstrap of {suite} from {mirror} failed")
        return
    if os.geteuid() != 0:
        raise BootstrapError("debootstrap needs root")
    with tempfile.TemporaryDirectory(prefix="bootstrap-", dir=str(out.parent)) as tmp:
        target = Path(tmp) / "rootfs"
        deb_variant = {"minbase": "minbase", "buildd": "buildd"}.get(variant)
        if deb_variant is None and variant not in ("", "debootstrap", "standard"):
            raise BootstrapError(f"debootstrap has no variant {variant!r} (minbase, buildd)")
        cmd = ["debootstrap"]
        if deb_variant:
            cmd.append(f"--variant={deb_variant}")
        if include:
            cmd.append("--include=" + ",".join(include))
        cmd += [suite, str(target), mirror]
        log(" ".join(cmd))
        if subprocess.run(cmd, env=env, stdout=sys.stderr).returncode != 0:
            raise BootstrapError(f"debootstrap of {suite} from {mirror} failed")
        for d in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for entry in (target / d).glob("*"):
                if entry.is_file():
                    entry.unlink()
        cmd = ["tar", "--numeric-owner", "--xattrs", "-C", str(target), "-cf", str(out), "."]
        if subprocess.run(cmd).returncode != 0:
            raise BootstrapError("archiving the debootstrap tree failed")
