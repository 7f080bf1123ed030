"""A container's upper dir copied as a layer in the walk that archives it.

`docker commit` (and each build step) needs the container's changes twice:
as a layer tar, for its diffID, and unpacked, as the new layer's overlay
lowerdir. Writing the tar and unpacking it again costs a tar parse, a path
resolution per entry and a copy of every byte; instead write_layer_tar walks
the upper dir once and hands each entry it archives to a `LayerCopy`, which
makes the same entry in the new layer directory, in the form the unpacker
would give it (tarsafe.unpack_layer): overlay whiteouts stay 0/0 character
devices, opaque directories keep trusted.overlay.opaque=y, hard links stay
links, owners, modes, whole-second mtimes and file capabilities as in the
tar. The tar stream itself only passes through a hash.

A name that the unpacker would read as a whiteout (".wh.*": a file a
container made with that name) stops the copy (`NeedsUnpack`): the caller
goes the tar-and-unpack way, whose semantics are Docker's.

Privileged calls (chown, mknod, xattrs) go through the Kernel, as unpacking.

With `workers`, small files (and symlinks) are created on that many threads
(image/file_pool), as the unpacker does: an inode's creation costs the kernel
far more than the walk's Python, and more still on a file system that just
freed many (ext4 without a journal skips recently deleted inodes). The walk
keeps everything else in order on its thread; a hard link whose target is
still in flight waits for it, and a directory's times are set only once no
job of its children is left (directory fds are kept until then).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

from dockyard.errors import KernelError
from dockyard.image.file_pool import FilePool
from dockyard.image.tarsafe import (
    OVERLAY_OPAQUE_XATTR,
    WHITEOUT_PREFIX,
    current_umask,
    fchown_if_needed,
)

if TYPE_CHECKING:
    from dockyard.kernel.interface import Kernel

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Directory fds whose times wait for their children's jobs, before a drain.
_HELD_DIRS = 128


class NeedsUnpack(Exception):
    """The tree holds a name the unpacker gives a meaning (".wh.*"): copy it
    by archiving and unpacking instead."""


def _times(st: os.stat_result) -> tuple[int, int]:
    # What a tar keeps (and so what an unpacked layer has): whole seconds, atime = mtime.
    ns = int(st.st_mtime) * 1_000_000_000
    return ns, ns


class LayerCopy:
    """Makes each entry write_layer_tar archives under the directory `root_fd`.

    Directory fds are handed back to the walk, which gives them back through
    `close_dir` once their children are walked (their times are set once those
    are made). `finish` when the walk is done, `close` in any case."""

    def __init__(self, root_fd: int, kernel: Kernel, workers: int = 0) -> None:
        self.root_fd = root_fd
        self.kernel = kernel
        self.size = 0  # bytes of regular files, as the unpacker counts a layer's size
        umask = current_umask()
        # Permission bits a create cannot give (umask, setuid...), so fchmod is needed for them.
        self._masked = 0o7777 if umask is None else umask | 0o7000
        self._pool: FilePool[tuple[os.stat_result, bytes | None]] | None = (
            FilePool(workers, self._write_job) if workers > 0 else None
        )
        self._held: list[tuple[int, os.stat_result]] = []  # walked directories, fd open

    def finish(self) -> None:
        """Every file made, every directory's times set (raises a worker's error)."""
        self._release_dirs()

    def close(self) -> None:
        """No worker writes after this returns; fds still held are closed."""
        if self._pool is not None:
            self._pool.close()
        held, self._held = self._held, []
        for fd, _ in held:
            os.close(fd)

    def _release_dirs(self) -> None:
        if self._pool is not None:
            self._pool.drain()
        while self._held:
            fd, st = self._held.pop()
            try:
                os.utime(fd, ns=_times(st))
            finally:
                os.close(fd)

    @staticmethod
    def check_name(name: str) -> None:
        if name.startswith(WHITEOUT_PREFIX):
            raise NeedsUnpack(name)

    def directory(
        self, parent: int, name: str, st: os.stat_result, caps: bytes | None, opaque: bool
    ) -> int:
        os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        try:
            fchown_if_needed(self.kernel, fd, st.st_uid, st.st_gid)
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            if caps is not None:
                self._set_caps(fd, caps)
            if opaque:
                self.kernel.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def close_dir(self, fd: int, st: os.stat_result) -> None:
        """Its children are walked: its times once they are made (held till then)."""
        if self._pool is None:
            try:
                os.utime(fd, ns=_times(st))
            finally:
                os.close(fd)
            return
        self._held.append((fd, st))
        if len(self._held) >= _HELD_DIRS:
            self._release_dirs()

    def small_file(
        self, parent: int, name: str, path: str, st: os.stat_result, data: bytes, caps: bytes | None
    ) -> None:
        """A regular file whose whole content is `data`: made by a worker if there
        are any. `path`: from the layer's root (a hard link may name it)."""
        self.size += len(data)
        if self._pool is None:
            self._write_small(parent, os.fsencode(name), (st, caps), data)
        else:
            # Keyed by its path from the layer's root, as `hardlink` asks for it.
            self._pool.add((0, os.fsencode(path)), parent, os.fsencode(name), (st, caps), data)

    def _write_job(
        self, parent: int, name: bytes, how: tuple[os.stat_result, bytes | None], data: bytes
    ) -> None:
        """A worker's job: a small file, or a symlink (`data`: its target)."""
        if stat.S_ISLNK(how[0].st_mode):
            self._make_symlink(parent, name, how, data)
        else:
            self._write_small(parent, name, how, data)

    def _write_small(
        self, parent: int, name: bytes, how: tuple[os.stat_result, bytes | None], data: bytes
    ) -> None:
        st, caps = how
        fd = os.open(name, _FILE_FLAGS, stat.S_IMODE(st.st_mode) & 0o777, dir_fd=parent)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            raise
        self._finish_file(fd, st, caps)

    def open_file(self, parent: int, name: str, st: os.stat_result) -> int:
        # With its mode when the umask lets it through: no chmod then (as the unpacker).
        return os.open(name, _FILE_FLAGS, stat.S_IMODE(st.st_mode) & 0o777, dir_fd=parent)

    def close_file(self, fd: int, st: os.stat_result, size: int, caps: bytes | None) -> None:
        """Owner, mode, capabilities and times of a file whose `size` bytes are written."""
        self.size += size
        self._finish_file(fd, st, caps)

    def _finish_file(self, fd: int, st: os.stat_result, caps: bytes | None) -> None:
        try:
            # chown before chmod: it clears setuid bits.
            fchown_if_needed(self.kernel, fd, st.st_uid, st.st_gid)
            mode = stat.S_IMODE(st.st_mode)
            if mode & self._masked:
                os.fchmod(fd, mode)
            if caps is not None:
                self._set_caps(fd, caps)
            os.utime(fd, ns=_times(st))
        finally:
            os.close(fd)

    def _set_caps(self, fd: int, caps: bytes) -> None:
        try:
            self.kernel.setxattr(fd, "security.capability", caps)
        except KernelError as e:
            # As the unpacker (and dockerd): a file system without them is not fatal.
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise

    def hardlink(self, target: str, parent: int, name: str) -> None:
        """`target`: the path (from the layer's root) of a file this copy made."""
        if self._pool is not None and self._pool.is_pending((0, os.fsencode(target))):
            self._pool.drain()
        tdir, _, tname = target.rpartition("/")
        tfd = os.open(tdir, _DIR_FLAGS, dir_fd=self.root_fd) if tdir else os.dup(self.root_fd)
        try:
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(tfd)

    def symlink(self, parent: int, name: str, target: str, st: os.stat_result) -> None:
        """Made by a worker if there are any: an inode created, as a file's."""
        raw_name, raw_target = os.fsencode(name), os.fsencode(target)
        if self._pool is None:
            self._make_symlink(parent, raw_name, (st, None), raw_target)
        else:
            # No hard link names a symlink (the walk links regular files only).
            self._pool.add((parent, raw_name), parent, raw_name, (st, None), raw_target)

    def _make_symlink(
        self, parent: int, name: bytes, how: tuple[os.stat_result, bytes | None], target: bytes
    ) -> None:
        st = how[0]
        os.symlink(target, name, dir_fd=parent)
        made = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if (made.st_uid, made.st_gid) != (st.st_uid, st.st_gid):
            self.kernel.lchownat(parent, os.fsdecode(name), st.st_uid, st.st_gid)
        os.utime(name, ns=_times(st), dir_fd=parent, follow_symlinks=False)

    def whiteout(self, parent: int, name: str, st: os.stat_result) -> None:
        self.kernel.mknodat(parent, name, stat.S_IFCHR | 0o000, 0, 0)
        self.kernel.lchownat(parent, name, st.st_uid, st.st_gid)
        os.utime(name, ns=_times(st), dir_fd=parent, follow_symlinks=False)

    def special(self, parent: int, name: str, st: os.stat_result) -> None:
        """A device node or a FIFO (a commit is trusted input: devices allowed)."""
        if stat.S_ISFIFO(st.st_mode):
            os.mkfifo(name, 0o600, dir_fd=parent)
        else:
            kind = stat.S_IFCHR if stat.S_ISCHR(st.st_mode) else stat.S_IFBLK
            rdev = st.st_rdev
            self.kernel.mknodat(parent, name, kind | 0o600, os.major(rdev), os.minor(rdev))
        self.kernel.lchownat(parent, name, st.st_uid, st.st_gid)
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=parent)  # not a symlink: made above
        os.utime(name, ns=_times(st), dir_fd=parent, follow_symlinks=False)
