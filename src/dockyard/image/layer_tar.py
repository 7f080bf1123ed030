"""Writing a directory as a Docker layer tar (`docker commit`, `docker export`).

The inverse of tarsafe.unpack_layer: an overlay upper directory becomes a
tar in Docker's layer format, with overlay whiteouts (0/0 char devices)
written as ".wh.NAME" and opaque directories as ".wh..wh..opq", the way
dockerd's overlay2 driver produces diffs. Given a mounted merged rootfs,
the same function produces `docker export` output.

The walk opens every directory relative to its parent with O_NOFOLLOW, so a
container that swaps a directory for a symlink while we read cannot make
us archive host files.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import tarfile
from typing import TYPE_CHECKING, BinaryIO

from dockyard.image.file_pool import SMALL_FILE
from dockyard.image.layered_read import lookup
from dockyard.image.tar_feed import TarFeed
from dockyard.image.tarsafe import OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX

if TYPE_CHECKING:
    from dockyard.image.layer_copy import LayerCopy

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# As dockerd: of all xattrs only file capabilities travel in layer tars.
_CAPS = "security.capability"
_KEPT_XATTRS = (_CAPS,)


class _FdReader:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, size: int = -1) -> bytes:
        return os.read(self.fd, size if size >= 0 else 1 << 20)


class _TeeReader(_FdReader):
    """Also writes what is read to `out` (the file's copy in the new layer)."""

    def __init__(self, fd: int, out: int) -> None:
        super().__init__(fd)
        self.out = out

    def read(self, size: int = -1) -> bytes:
        data = os.read(self.fd, size if size >= 0 else 1 << 20)
        view = memoryview(data)
        while view:
            view = view[os.write(self.out, view) :]
        return data


def write_layer_tar(
    root: str,
    out: BinaryIO,
    *,
    overlay_whiteouts: bool = True,
    exclude: frozenset[str] | set[str] = frozenset(),
    copy: LayerCopy | None = None,
    threaded: bool = False,
) -> None:
    """Write the tree under `root` to `out` as an uncompressed layer tar.

    Entries are in sorted order with names relative to `root` ("etc/",
    "etc/passwd"), numeric owners, whole-second mtimes and no atime/ctime,
    so the same tree gives the same bytes (and so the same diff_id).
    With `overlay_whiteouts` false, 0/0 char devices are archived as devices.
    Paths in `exclude` ("etc/hosts") are left out with what is below them.
    With `copy` (image/layer_copy), each entry archived is also made in the
    copy's directory, as unpacking the tar there would make it.
    With `copy` or `threaded`, the tar is encoded and written to `out` by a
    thread of its own (image/tar_feed), beside the walk's reads: `out` must
    take writes from another thread (a file, a hash; not an event loop's).
    """
    if copy is not None or threaded:
        root_fd = os.open(root, _DIR_FLAGS)
        feed = TarFeed(out)
        at = _Copying(copy, copy.root_fd) if copy is not None else None
        try:
            _walk(feed, root_fd, "", {}, overlay_whiteouts, exclude, at)  # type: ignore[arg-type]
            if copy is not None:
                copy.finish()
        except BaseException:
            feed.abort()
            raise
        finally:
            os.close(root_fd)
        feed.close()
        return
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        root_fd = os.open(root, _DIR_FLAGS)
        try:
            _walk(tar, root_fd, "", {}, overlay_whiteouts, exclude)
        finally:
            os.close(root_fd)


class _Copying:
    """Where the walk is in the copy: its LayerCopy and the directory fd there."""

    __slots__ = ("copy", "fd")

    def __init__(self, copy: LayerCopy, fd: int) -> None:
        self.copy = copy
        self.fd = fd


def _walk(
    tar: tarfile.TarFile,
    dir_fd: int,
    prefix: str,
    inodes: dict[tuple[int, int], str],
    overlay_whiteouts: bool,
    exclude: frozenset[str] | set[str] = frozenset(),
    at: _Copying | None = None,
) -> None:
    for entry in sorted(os.scandir(dir_fd), key=_entry_name):
        name = entry.name
        path = prefix + name
        if path in exclude:
            continue
        if at is not None:
            at.copy.check_name(name)
        if entry.is_file(follow_symlinks=False):
            # A regular file by its directory entry: opened first, its fstat is its
            # stat (one call less than stat, open, fstat).
            try:
                fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
            except FileNotFoundError:
                continue  # removed while we walk
            except OSError as e:
                if e.errno != errno.ELOOP:
                    raise
                fd = -1  # swapped for a symlink: taken by its stat below
            if fd >= 0:
                try:
                    st = os.fstat(fd)
                    if stat.S_ISREG(st.st_mode):
                        _add_file(tar, fd, name, prefix, st, inodes, at)
                    # Anything else: swapped while we walk, left out as below.
                finally:
                    os.close(fd)
                continue
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed while we walk
        if not stat.S_ISDIR(st.st_mode):
            _add_non_dir(tar, dir_fd, name, prefix, st, inodes, overlay_whiteouts, at)
            continue
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            continue
        try:
            info = _header(path, st)
            info.pax_headers = _xattrs(child)
            tar.addfile(info)
            opaque = overlay_whiteouts and _getxattr(child, OVERLAY_OPAQUE_XATTR) == b"y"
            if opaque:
                marker = _header(path + "/" + WHITEOUT_OPAQUE, st)
                marker.type, marker.mode, marker.size = tarfile.REGTYPE, st.st_mode & 0o777, 0
                tar.addfile(marker)
            inner = None
            if at is not None:
                made = at.copy.directory(at.fd, name, st, _caps_of(info), opaque)
                inner = _Copying(at.copy, made)
            try:
                _walk(tar, child, path + "/", inodes, overlay_whiteouts, exclude, inner)
            finally:
                if inner is not None:
                    at.copy.close_dir(inner.fd, st)  # type: ignore[union-attr]
        finally:
            os.close(child)


def write_merged_tar(dirs: list[str], out: BinaryIO) -> None:
    """`docker export` without a mount: the merged view of stacked layer dirs
    (top-most first, e.g. [container_upper, *lower_dirs]) as one flat tar,
    with whiteouts and opaque directories applied, not archived."""
    roots: list[int] = []
    try:
        for d in dirs:
            with contextlib.suppress(FileNotFoundError):
                roots.append(os.open(d, _DIR_FLAGS))
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            _walk_merged(tar, roots, "", {})
    finally:
        for fd in roots:
            os.close(fd)


def _walk_merged(
    tar: tarfile.TarFile, active: list[int], prefix: str, inodes: dict[tuple[int, int], str]
) -> None:
    names: set[str] = set()
    for fd in active:
        names.update(os.listdir(fd))
    for name in sorted(names):
        found = lookup(active, name)
        if found.kind == "absent":
            continue
        if found.kind != "dir":
            try:
                st = os.stat(found.name, dir_fd=found.at, follow_symlinks=False)
            except FileNotFoundError:
                continue
            _add_non_dir(tar, found.at, name, prefix, st, inodes, overlay_whiteouts=False)
            continue
        try:
            # A merged directory shows the attributes of its top-most copy.
            top = found.dirs[0]
            info = _header(prefix + name, os.fstat(top))
            info.pax_headers = _xattrs(top)
            tar.addfile(info)
            _walk_merged(tar, found.dirs, prefix + name + "/", inodes)
        finally:
            for fd in found.dirs:
                os.close(fd)


def _add_non_dir(
    tar: tarfile.TarFile,
    dir_fd: int,
    name: str,
    prefix: str,
    st: os.stat_result,
    inodes: dict[tuple[int, int], str],
    overlay_whiteouts: bool,
    at: _Copying | None = None,
) -> None:
    if stat.S_ISREG(st.st_mode):
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        try:
            now = os.fstat(fd)
            if stat.S_ISREG(now.st_mode):  # else swapped for something else while we walk
                _add_file(tar, fd, name, prefix, now, inodes, at)
        finally:
            os.close(fd)
        return
    info = _header(prefix + name, st)
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(name, dir_fd=dir_fd)
        tar.addfile(info)
        if at is not None:
            at.copy.symlink(at.fd, name, info.linkname, st)
    elif stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and overlay_whiteouts:
        whiteout = _header(prefix + WHITEOUT_PREFIX + name, st)
        whiteout.type, whiteout.mode, whiteout.size = tarfile.REGTYPE, 0o600, 0
        tar.addfile(whiteout)
        if at is not None:
            at.copy.whiteout(at.fd, name, st)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tar.addfile(info)
        if at is not None:
            at.copy.special(at.fd, name, st)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
        if at is not None:
            at.copy.special(at.fd, name, st)
    # Sockets are skipped, as by dockerd.


def _caps_of(info: tarfile.TarInfo) -> bytes | None:
    """The file capabilities as the tar carries them (read once, by _xattrs)."""
    caps = info.pax_headers.get("SCHILY.xattr." + _CAPS)
    return caps.encode("utf-8", "surrogateescape") if caps is not None else None


def _entry_name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _add_file(
    tar: tarfile.TarFile,
    fd: int,
    name: str,
    prefix: str,
    st: os.stat_result,
    inodes: dict[tuple[int, int], str],
    at: _Copying | None,
) -> None:
    """A regular file, open as `fd` (O_NONBLOCK, which reads of a regular file
    ignore), `st` its fstat: its data, or a hard link to a file archived before."""
    path = prefix + name
    info = _header(path, st)
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in inodes:
        info.type, info.linkname, info.size = tarfile.LNKTYPE, inodes[key], 0
        tar.addfile(info)
        if at is not None:
            at.copy.hardlink(inodes[key], at.fd, name)
        return
    info.pax_headers = _xattrs(fd)
    info.size = st.st_size
    raw = _caps_of(info)
    if at is None:
        tar.addfile(info, _FdReader(fd))  # type: ignore[arg-type]
    elif info.size <= SMALL_FILE:
        # Read whole: the same bytes go to the tar and to the copy's writer.
        data = _read_exactly(fd, info.size)
        tar.addfile(info, io.BytesIO(data))
        at.copy.small_file(at.fd, name, path, st, data, raw)
    else:
        out = at.copy.open_file(at.fd, name, st)
        try:
            tar.addfile(info, _TeeReader(fd, out))  # type: ignore[arg-type]
        finally:
            at.copy.close_file(out, st, info.size, raw)
    inodes[key] = path


def _read_exactly(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    if len(data) == size:
        return data
    parts = [data]
    left = size - len(data)
    while left:
        part = os.read(fd, left)
        if not part:
            raise OSError("unexpected end of data")  # as tarfile's copy: the file shrank
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _header(path: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type = tarfile.DIRTYPE if stat.S_ISDIR(st.st_mode) else tarfile.REGTYPE
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    info.size = 0
    return info


def _getxattr(fd: int, name: str) -> bytes | None:
    try:
        return os.getxattr(fd, name)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
            return None
        raise


def _xattrs(fd: int) -> dict[str, str]:
    out = {}
    for name in _KEPT_XATTRS:
        value = _getxattr(fd, name)
        if value is not None:
            out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                # Capability sets are binary; tarfile writes raw bytes (as Go
                # does) only under hdrcharset=BINARY.
                out["hdrcharset"] = "BINARY"
    return out
