"""Files in and out of a running container (the archive API behind `docker cp`).

Paths are resolved in the container's own mount view: the root is
/proc/<pid>/root of its init, so volumes and binds mounted in the container are
seen as the container sees them. Every lookup is an openat2(RESOLVE_IN_ROOT) from
that root (kernel/), and everything after it is relative to the fds it gave: a
symlink the container plants (`/out -> /`) resolves inside the container, and a
swap of a directory for a symlink between two steps cannot redirect us to the
host. Extraction goes through the layer unpacker (image/tarsafe), which creates
every entry relative to the destination directory's fd.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.errors import Conflict, Forbidden, InvalidParameter, KernelError, NotFound
from dockyard.image.tarsafe import unpack_layer
from dockyard.kernel.flags import MNT_DETACH, MOUNT_ATTR_RDONLY, MS_PRIVATE, MS_REC
from dockyard.kernel.interface import Kernel
from dockyard.runtime.spec import BindMount

# Go's os.FileMode type bits, which the stat header carries.
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHARDEV = 1 << 21
_GO_STICKY = 1 << 20


@dataclass
class PathStat:
    name: str
    size: int
    mode: int  # Go FileMode
    mtime: float
    link_target: str

    def header(self) -> str:
        """X-Docker-Container-Path-Stat: base64 of the JSON docker's container.PathStat."""
        from dockyard.engine.clock import rfc3339

        doc = {
            "name": self.name,
            "size": self.size,
            "mode": self.mode,
            "mtime": rfc3339(int(self.mtime * 1e9)),
            "linkTarget": self.link_target,
        }
        return base64.b64encode(json.dumps(doc).encode()).decode()


def go_mode(st: os.stat_result) -> int:
    mode = stat.S_IMODE(st.st_mode) & 0o777
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFDIR:
        mode |= _GO_DIR
    elif kind == stat.S_IFLNK:
        mode |= _GO_SYMLINK
    elif kind == stat.S_IFIFO:
        mode |= _GO_PIPE
    elif kind == stat.S_IFSOCK:
        mode |= _GO_SOCKET
    elif kind == stat.S_IFCHR:
        mode |= _GO_DEVICE | _GO_CHARDEV
    elif kind == stat.S_IFBLK:
        mode |= _GO_DEVICE
    if st.st_mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if st.st_mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if st.st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


class ContainerFiles:
    """The files of one running container, seen from its root."""

    def __init__(
        self, kernel: Kernel, root: int, ref: str, on_close: Callable[[], None] | None = None
    ) -> None:
        self._kernel = kernel
        self._ref = ref
        self.readonly_rootfs = False
        self.owner: tuple[int, int] | None = None  # the container's --user, for cp -a
        self.root = root  # an O_PATH fd of the container's "/" (ours to close)
        self._on_close = on_close
        self.on_success: Callable[[], None] | None = None  # after a copy that did not fail

    @classmethod
    def of_running(cls, kernel: Kernel, pid: int, ref: str) -> ContainerFiles:
        try:
            root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            raise Conflict(f"container {ref} is not running") from None
        return cls(kernel, root, ref)

    @classmethod
    def of_stopped(
        cls,
        kernel: Kernel,
        ref: str,
        scratch: str,
        layers: tuple[list[str], str, str],
        binds: list[BindMount],
    ) -> ContainerFiles:
        """A stopped container's root, as dockerd does it: its overlay mounted (on a
        root-only scratch dir of the daemon) with its volumes and binds on it, all
        unmounted again at close. The caller keeps the container from starting
        meanwhile (two overlays on one upper dir)."""
        lower, upper, work = layers
        os.makedirs(scratch, mode=0o700, exist_ok=True)
        kernel.mount_overlay(scratch, lower, upper, work)

        def unmount() -> None:
            kernel.umount2(scratch, MNT_DETACH)  # lazy: takes the binds on it along
            with contextlib.suppress(OSError):
                os.rmdir(scratch)

        try:
            root = os.open(scratch, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                for m in binds:
                    target = _mountpoint(kernel, root, m.destination, os.path.isdir(m.source))
                    try:
                        attrs = MOUNT_ATTR_RDONLY if m.readonly else 0
                        kernel.bind_mount_at(m.source, target, True, attrs, MS_PRIVATE | MS_REC)
                    finally:
                        os.close(target)
            except BaseException:
                os.close(root)
                raise
        except BaseException:
            unmount()
            raise
        return cls(kernel, root, ref, unmount)

    def close(self) -> None:
        os.close(self.root)
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> ContainerFiles:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close()
        if exc_type is None and self.on_success is not None:
            self.on_success()

    def _missing(self, path: str) -> NotFound:
        return NotFound(f"Could not find the file {path} in container {self._ref}")

    def _open(self, path: str, flags: int) -> int:
        try:
            return self._kernel.open_in_root(self.root, path, flags)
        except KernelError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                raise self._missing(path) from None
            if e.errno == errno.ELOOP:
                raise InvalidParameter(f"too many levels of symbolic links: {path}") from None
            raise

    def stat(self, path: str) -> PathStat:
        """docker's StatPath: the entry itself (a final symlink is not followed), and
        for a symlink the absolute target it resolves to inside the container."""
        fd = self._open(path, os.O_PATH | os.O_NOFOLLOW)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        target = ""
        if stat.S_ISLNK(st.st_mode):
            target = self._resolved(path)
        name = posixpath.basename(posixpath.normpath(path)) or "/"
        return PathStat(name, st.st_size, go_mode(st), st.st_mtime, target)

    def _resolved(self, path: str) -> str:
        """The absolute path inside the container that `path` leads to (links followed)."""
        try:
            fd = self._kernel.open_in_root(self.root, path, os.O_PATH)
        except KernelError:
            # a dangling link: its target as written, made absolute
            parent = posixpath.dirname(posixpath.normpath("/" + path))
            pfd = self._open(parent, os.O_PATH | os.O_DIRECTORY)
            try:
                link = os.readlink(posixpath.basename(path.rstrip("/")), dir_fd=pfd)
            finally:
                os.close(pfd)
            return posixpath.normpath(posixpath.join(parent, link))
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
            root = os.readlink(f"/proc/self/fd/{self.root}")
        finally:
            os.close(fd)
        rel = posixpath.relpath(real, root) if root != "/" else real.lstrip("/")
        return "/" + ("" if rel == "." else rel)

    def write_tar(self, path: str, out: BinaryIO) -> None:
        """A tar of `path` as GET /archive gives it: entries under the path's base name
        ("." for a path ending in "/."), symlinks as links, never followed."""
        norm = posixpath.normpath("/" + path)
        base = "." if path.endswith("/.") else (posixpath.basename(norm) or ".")
        fd = self._open(path, os.O_PATH | os.O_NOFOLLOW)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            try:
                self._add(tar, fd, base, top=True)
            finally:
                os.close(fd)

    def _add(self, tar: tarfile.TarFile, fd: int, name: str, top: bool = False) -> None:
        st = os.fstat(fd)
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
            dfd = (
                os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd) if top else fd
            )
            try:
                for child in sorted(os.listdir(dfd)):
                    try:
                        cfd = os.open(child, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                    except FileNotFoundError:
                        continue  # removed meanwhile
                    try:
                        cst = os.fstat(cfd)
                        if stat.S_ISDIR(cst.st_mode):
                            sub = os.open(
                                child,
                                os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                dir_fd=dfd,
                            )
                            try:
                                self._add(tar, sub, f"{name}/{child}")
                            finally:
                                os.close(sub)
                        else:
                            self._add_leaf(tar, dfd, child, cst, f"{name}/{child}")
                    finally:
                        os.close(cfd)
            finally:
                if top:
                    os.close(dfd)
            return
        # a non-directory at the top: its parent is not needed, the O_PATH fd is it
        self._add_leaf(tar, fd, "", st, name)

    def _add_leaf(
        self, tar: tarfile.TarFile, dir_fd: int, child: str, st: os.stat_result, name: str
    ) -> None:
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        if stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            # child "" is the O_PATH fd of the link itself (readlinkat with an empty name)
            info.linkname = os.readlink(child, dir_fd=dir_fd)
            tar.addfile(info)
        elif stat.S_ISREG(st.st_mode):
            flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
            if child:
                ffd = os.open(child, flags | os.O_NOFOLLOW, dir_fd=dir_fd)
            else:
                # reopening an O_PATH fd through /proc gives that very inode, nothing else
                ffd = os.open(f"/proc/self/fd/{dir_fd}", flags)
            with os.fdopen(ffd, "rb") as f:
                info.size = os.fstat(ffd).st_size
                tar.addfile(info, f)
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
            tar.addfile(info)
        # devices and sockets are left out, as a `docker cp` of /dev would not help anyone

    def extract(self, path: str, stream: BinaryIO, copy_uid_gid: bool = False) -> None:
        """PUT /archive: unpack a tar into the directory `path` (which must exist).

        Entries keep the tar's uid/gid; with copyUIDGID (cp -a) and a container run
        with --user, they belong to that user instead (dockerd's tarCopyOptions)."""
        if copy_uid_gid and self.owner is not None:
            stream = _owned_by(stream, *self.owner)
        fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY) if self._is_dir(path) else None
        if fd is None:
            raise InvalidParameter("extraction point is not a directory")
        try:
            if _is_readonly_mount(fd):
                raise Forbidden(
                    "container rootfs is marked read-only"
                    if self.readonly_rootfs
                    else "mounted volume is marked read-only"
                )
            unpack_layer(stream, path, allow_devices=False, dest_fd=fd)
        except OSError as e:
            if e.errno == errno.EROFS:
                raise Forbidden("mounted volume is marked read-only") from None
            raise
        finally:
            os.close(fd)

    def _is_dir(self, path: str) -> bool:
        fd = self._open(path, os.O_PATH)
        try:
            return stat.S_ISDIR(os.fstat(fd).st_mode)
        finally:
            os.close(fd)


def _is_readonly_mount(fd: int) -> bool:
    return bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY)


def _mountpoint(kernel: Kernel, root: int, path: str, is_dir: bool) -> int:
    """An O_PATH fd of `path` inside root, created (directories, or an empty file for a
    file bind) where missing; every prefix resolved from the root (RESOLVE_IN_ROOT)."""
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        prefix = "/" + "/".join(parts[: i + 1])
        try:
            os.close(kernel.open_in_root(root, prefix, os.O_PATH))
            continue
        except KernelError as e:
            if e.errno != errno.ENOENT:
                raise
        parent = kernel.open_in_root(root, "/" + "/".join(parts[:i]), os.O_RDONLY | os.O_DIRECTORY)
        try:
            if i == len(parts) - 1 and not is_dir:
                flags = os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                os.close(os.open(part, flags, 0o644, dir_fd=parent))
            else:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=parent)
        finally:
            os.close(parent)
    return kernel.open_in_root(root, "/" + "/".join(parts), os.O_PATH)


def _owned_by(stream: BinaryIO, uid: int, gid: int) -> BinaryIO:
    """The same tar with every entry owned by uid:gid (a spooled copy)."""
    import tempfile

    from dockyard.image.tarsafe import open_decompressed

    out = tempfile.TemporaryFile()  # noqa: SIM115 (returned to the caller)
    with (
        tarfile.open(fileobj=open_decompressed(stream), mode="r|") as src,  # type: ignore[call-overload]
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dst,
    ):
        for member in src:
            member.uid, member.gid, member.uname, member.gname = uid, gid, "", ""
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    out.seek(0)
    return out
