"""Unpacking a layer tar into a directory without ever writing outside it.

Docker unpacks layers inside a chroot of the destination, so every path and
every symlink met on the way resolves *inside* the layer. We get the same
semantics without chroot: each parent directory is resolved by the kernel
relative to the layer root as if it were "/" (kernel/securejoin:
openat2(RESOLVE_IN_ROOT), or an fd-by-fd walk where openat2 is missing, the
resolver the runtime uses for mounts), never as a string by us. Entries are
then created relative to that directory fd (O_EXCL, O_NOFOLLOW), so no path
string ever reaches outside `dest`.

Docker whiteouts (".wh.NAME", ".wh..wh..opq") are converted to overlayfs
form (0/0 char device, trusted.overlay.opaque=y), as dockerd's overlay2
driver does, so the unpacked directory can be used as a lowerdir as is.

The privileged calls (chown, mknod, xattrs) and path resolution go through a
`Kernel` (DESIGN.md): the Linux one in the daemon, the recording one in unit
tests without root. Plain file I/O (open, write, mkdir, symlink, link) is
done here directly. The tar itself is read by image/tar_reader (fast, forward
only, hashed as it passes).
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO, Protocol

from dockyard.errors import (
    DockyardError,
    InvalidParameter,
    KernelError,
    RuntimeFailure,
    StorageFull,
    storage_full,
)
from dockyard.image import tar_reader as tr
from dockyard.image.file_pool import SMALL_FILE, FilePool
from dockyard.image.tar_reader import TarEntry, TarReader
from dockyard.kernel.securejoin import open_in_root

if TYPE_CHECKING:
    from dockyard.image.tar_split import TarSplit
    from dockyard.kernel.interface import Kernel

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT_PREFIX_B = WHITEOUT_PREFIX.encode()
WHITEOUT_META_PREFIX_B = WHITEOUT_META_PREFIX.encode()
WHITEOUT_OPAQUE_B = WHITEOUT_OPAQUE.encode()

_PARENT_CACHE = 512  # directory fds kept open while unpacking
_KNOWN_NAMES = 100_000  # names remembered in directories of known contents
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


_KERNEL: list[Kernel] = []


def default_kernel() -> Kernel:
    """The Linux kernel, made once (tests put a recording one in its place)."""
    if not _KERNEL:
        from dockyard.kernel.linux import LinuxKernel

        _KERNEL.append(LinuxKernel())
    return _KERNEL[0]


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _PrefixedReader:
    """Replays the bytes already read for magic detection, then the rest of the stream."""

    def __init__(self, prefix: bytes, stream: Readable) -> None:
        self._prefix = prefix
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                data, self._prefix = self._prefix + self._stream.read(), b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            if len(data) < size:
                data += self._stream.read(size - len(data))
            return data
        return self._stream.read(size)

    def readinto(self, buf: memoryview) -> int:
        # The tar reader fills its buffer in place: no copy of a plain stream.
        if self._prefix:
            data = self.read(len(buf))
            buf[: len(data)] = data
            return len(data)
        readinto = getattr(self._stream, "readinto", None)
        if readinto is None:
            data = self._stream.read(len(buf))
            buf[: len(data)] = data
            return len(data)
        return readinto(buf) or 0

    def readable(self) -> bool:
        return True


def _read_exactly(stream: Readable, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def open_decompressed(stream: Readable) -> Readable:
    """The uncompressed tar stream of a layer given plain, gzip, bzip2 or xz.

    Detection is by magic bytes, as dockerd does (DetectCompression); the
    stream is read forward only, so pipes and sockets work.
    """
    head = _read_exactly(stream, 6)
    src = _PrefixedReader(head, stream)
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[arg-type]
    if head.startswith(_BZIP2_MAGIC):
        return bz2.BZ2File(src, mode="rb")  # type: ignore[arg-type]
    if head.startswith(_XZ_MAGIC):
        return lzma.LZMAFile(src, mode="rb")  # type: ignore[arg-type]
    if head.startswith(_ZSTD_MAGIC):
        import zstandard  # only when met: most layers are gzip or plain

        return zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)  # type: ignore[arg-type]
    return src


@contextlib.contextmanager
def archive_errors() -> Iterator[None]:
    """Turn a corrupt or truncated stream (tar, gzip, bzip2, xz) into InvalidParameter.

    Other OS errors (disk full, I/O) stay what they are: not the client's fault.
    """
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as e:
        raise InvalidParameter(f"invalid layer archive: {e}") from e
    except OSError as e:
        if "Invalid data stream" in str(e):  # how bz2 reports garbage
            raise InvalidParameter(f"invalid layer archive: {e}") from e
        raise
    except Exception as e:
        # zstandard's error class, matched by name: importing the module here
        # would load it for every layer, compressed or not.
        if type(e).__name__ == "ZstdError":
            raise InvalidParameter(f"invalid layer archive: zstd: {e}") from e
        raise


def unpack_layer(
    stream: BinaryIO | Readable,
    dest: str,
    *,
    allow_devices: bool = True,
    dest_fd: int | None = None,
    kernel: Kernel | None = None,
    on_read: Callable[[memoryview], None] | None = None,
    workers: int = 0,
    divert: Callable[[TarReader, TarEntry], Callable[[], None] | None] | None = None,
    split: TarSplit | None = None,
    tar_assist: bool = False,
) -> int:
    """Unpack a (possibly compressed) layer tar into `dest`; return the unpacked size.

    The size is the sum of regular file sizes, as dockerd's ApplyLayer counts.
    `on_read` sees every byte of the uncompressed stream once, to the end
    (what follows the end-of-archive blocks too): the diff_id is hashed in
    the same pass. With `workers`, small files are written by that many
    threads (image/file_pool) while the tar is read: for a new, empty `dest`
    (a layer), not for one that already holds a tree (docker cp). On error
    `dest` may hold part of the layer: callers unpack into a private
    temporary directory and rename it into place only on success.

    `divert(reader, entry)`, called for each plain regular file, may take the
    member's data itself (reading it through `reader`) and return a callable:
    the file is then made empty, a placeholder that names where it was, and
    the callable is called right after (docker load unpacks an archive's
    layers as they arrive this way).

    `split` (image/tar_split) is told every byte of the stream as it is
    consumed and the file each member's data went to: a loaded layer's tar
    kept without a copy of its data.

    `tar_assist`: when `dest` is new and empty, plain entries are made by a GNU
    tar child that this function feeds and checks (image/tar_assist).
    """
    if dest_fd is None:
        os.makedirs(dest, exist_ok=True)
    unpacker = _LayerUnpacker(dest, dest_fd, kernel, workers)
    unpacker.allow_devices = allow_devices  # False for untrusted archives (docker load)
    unpacker.split = split
    assist = None
    try:
        if tar_assist and divert is None and dest_fd is None:
            from dockyard.image.tar_assist import assist_for

            assist = assist_for(unpacker, dest)
        with archive_errors():
            reader = TarReader(open_decompressed(stream), on_read, consumed=split)
            while (entry := reader.next()) is not None:
                if assist is not None:
                    assist.add(reader, entry)
                    continue
                placed = None
                if divert is not None and entry.type == tr.REG and entry.sparse is None:
                    placed = divert(reader, entry)
                    if placed is not None:
                        entry.size = entry.real_size = 0  # what is left is skipped by next()
                unpacker.add(reader, entry)
                if placed is not None:
                    placed()
            if assist is not None:
                assist.finish()
            if on_read is not None or split is not None:
                reader.drain()
        unpacker.finish()
    finally:
        if assist is not None:
            assist.close()
        unpacker.close()
    return unpacker.size


def current_umask() -> int | None:
    """The process's umask, read without changing it (Linux >= 4.7)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


class _LayerUnpacker:
    """Creates each entry relative to a directory fd that the kernel resolved
    inside the layer (kernel/securejoin: openat2 RESOLVE_IN_ROOT, or the fd walk),
    with as few system calls per entry as `tar -x` makes: no stat before a
    create (O_EXCL; an existing entry is handled on EEXIST), owner and mode on
    the open fd, the mode given at create when the umask lets it through."""

    def __init__(
        self,
        dest: str,
        dest_fd: int | None = None,
        kernel: Kernel | None = None,
        workers: int = 0,
    ) -> None:
        self.allow_devices = True
        self.split: TarSplit | None = None
        # Owners, device nodes, xattrs and path resolution go through the kernel
        # (a recording one in unit tests without root); plain file I/O does not.
        self.kernel = kernel if kernel is not None else default_kernel()
        # dest_fd: a directory already resolved (docker cp into a container's root)
        self.root_fd = os.dup(dest_fd) if dest_fd is not None else os.open(dest, _DIR_FLAGS)
        self.size = 0
        umask = current_umask()
        # Permission bits a create cannot give (umask), so fchmod is needed for them.
        self._masked = 0o7777 if umask is None else umask | 0o7000
        # Directory mtimes are set at the end: creating children changes them.
        self._dir_times: dict[bytes, tuple[int, int]] = {}
        # Directories resolved so far (layer path -> fd): a rootfs tar goes back
        # and forth between a few hundred of them.
        self._parents: dict[bytes, int] = {}
        self._pool = FilePool(workers, self._write_small) if workers > 0 else None
        # With a pool: the inode of each cached directory fd (names in flight are
        # keyed by it, whatever path led there).
        self._inodes: dict[int, int] = {}
        # With a pool: the directories whose every name is known (inode -> names),
        # those this unpack made (and the empty `dest`). A new name there needs
        # no stat before it goes to a worker: that stat waits on the directory
        # lock the workers' creates hold, a third of the unpacking thread's
        # time. Wrong knowledge could only make a worker's O_EXCL create fail
        # (the load fails), never write anywhere else; None: not kept (any
        # directory made by path resolution, or too many names).
        self._known: dict[int, set[bytes]] | None = None
        self._known_count = 0
        if self._pool is not None and not os.listdir(self.root_fd):
            self._known = {os.fstat(self.root_fd).st_ino: set()}

    def _made(self, parent_ino: int, base: bytes) -> None:
        """`base` now exists in the directory of inode `parent_ino`. (A name removed
        stays known: it may only send its next file the way that stats first.)"""
        known = self._known
        if known is None:
            return
        names = known.get(parent_ino)
        if names is not None:
            names.add(base)
            self._known_count += 1
            if self._known_count > _KNOWN_NAMES:
                self._known = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()  # no worker may still write once we return
        self._drop_cache()
        os.close(self.root_fd)

    def _drain(self) -> None:
        if self._pool is not None:
            self._pool.drain()

    def _drop_cache(self) -> None:
        """Forget every resolved directory: called before a directory or symlink is
        removed or replaced, so no cached fd names what is no longer at its path."""
        self._drain()  # a worker may be using one of them
        parents, self._parents = self._parents, {}
        self._inodes.clear()
        for fd in parents.values():
            os.close(fd)

    def _cache(self, rel: bytes, fd: int) -> None:
        old = self._parents.get(rel)
        if old is not None:
            self._drain()
            self._inodes.pop(old, None)
            os.close(old)
        elif len(self._parents) >= _PARENT_CACHE:
            self._drop_cache()
        self._parents[rel] = fd
        if self._pool is not None:
            self._inodes[fd] = os.fstat(fd).st_ino

    # -- path resolution ---------------------------------------------------------

    def _open_dir(self, rel: bytes, entry: TarEntry, create: bool) -> int:
        """A directory fd of layer path `rel`, resolved by the kernel as if the layer
        were "/" (symlinks and ".." stay inside); missing directories are made
        (0755, as dockerd) when `create`."""
        path = os.fsdecode(rel)
        try:
            if create and self._known is not None:
                try:
                    opath = open_in_root(self.kernel, self.root_fd, path, None)
                except KernelError as e:
                    if e.errno != errno.ENOENT:
                        raise
                    # Directories made on the way are names no one records.
                    self._known = None
                    opath = open_in_root(self.kernel, self.root_fd, path, "dir")
            else:
                opath = open_in_root(self.kernel, self.root_fd, path, "dir" if create else None)
        except KernelError as e:
            raise _resolve_error(entry, path, e.errno) from e
        except RuntimeFailure as e:  # too many links, or a path that keeps changing
            raise InvalidParameter(f"invalid tar entry {entry.shown!r}: {e.message}") from e
        try:
            return os.open(".", _DIR_FLAGS, dir_fd=opath)
        except NotADirectoryError:
            raise InvalidParameter(
                f"invalid tar entry {entry.shown!r}: {path!r} is not a directory"
            ) from None
        finally:
            os.close(opath)

    def _parent(self, rel: bytes, entry: TarEntry) -> int:
        """Directory fd of `rel` (owned by the cache: do not close)."""
        fd = self._parents.get(rel)
        if fd is not None:
            return fd
        fd = self._open_dir(rel, entry, create=True) if rel else os.dup(self.root_fd)
        self._cache(rel, fd)
        return fd

    # -- entries -----------------------------------------------------------------

    def add(self, reader: TarReader, entry: TarEntry) -> None:
        rel = _layer_relative(entry.name, entry)
        if rel == b".":
            if entry.type == tr.DIR:
                self._apply_dir_metadata(self.root_fd, b"", entry)
            return
        parent_rel, _, base = rel.rpartition(b"/")
        if b".wh..wh." in parent_rel and any(
            p.startswith(WHITEOUT_META_PREFIX_B) for p in parent_rel.split(b"/")
        ):
            return  # aufs bookkeeping (.wh..wh.plnk etc.), meaningless for overlay
        try:
            parent = self._parent(parent_rel, entry)
            kind = entry.type
            pool = self._pool
            whiteout = base.startswith(WHITEOUT_PREFIX_B)
            if pool is not None:
                key = (self._inodes[parent], base)
                if pool.is_pending(key) or kind == tr.LNK or whiteout:
                    pool.drain()  # in order with what the workers are writing
                if (
                    kind == tr.REG
                    and entry.sparse is None
                    and entry.size <= SMALL_FILE
                    and not whiteout
                    and not self._exists(key, parent, base)
                ):
                    # New name: nothing to replace, so a worker can make it.
                    if self.split is not None:
                        self.split.reference(rel, entry.size)
                    pool.add(key, parent, base, entry, reader.read_data(entry.size))
                    self._made(key[0], base)
                    self.size += entry.size
                    return
            if whiteout:
                self._add_whiteout(parent_rel, parent, base, entry)
            elif kind == tr.REG:
                self._add_file(reader, entry, parent_rel, parent, base)
            elif kind == tr.DIR:
                self._add_dir(entry, parent_rel, parent, base, rel)
            elif kind == tr.SYM:
                self._add_symlink(entry, parent_rel, parent, base)
            elif kind == tr.LNK:
                self._add_hardlink(entry, parent_rel, parent, base)
            elif kind in (tr.CHR, tr.BLK, tr.FIFO):
                self._add_special(entry, parent_rel, parent, base)
            else:
                raise InvalidParameter(
                    f"unhandled tar header type {chr(kind)!r} for {entry.shown!r}"
                )
            if pool is not None:
                # The name made (a whiteout's: the name it hides), known from now on.
                self._made(key[0], base[len(WHITEOUT_PREFIX_B) :] if whiteout else base)
        except (OSError, KernelError) as e:
            raise _entry_error(entry, e) from e

    def _exists(self, key: tuple[int, bytes], parent: int, base: bytes) -> bool:
        known = self._known
        if known is not None:
            names = known.get(key[0])
            if names is not None:
                return base in names
        return _exists(parent, base)

    def _make_room(self, parent_rel: bytes, parent: int, base: bytes, keep_dir: bool) -> int:
        """Docker semantics: a later entry replaces an earlier one, except dir over dir.
        Returns the parent's fd again (the cache may have been dropped meanwhile)."""
        try:
            st = os.stat(base, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return parent
        if keep_dir and stat.S_ISDIR(st.st_mode):
            return parent
        self._drain()  # workers may be writing below what goes
        if self.split is not None:
            self.split.before_removal()  # what goes may be a file the split names
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            # A cached directory may be below it, or have been resolved through it.
            pinned = os.dup(parent)
            try:
                self._drop_cache()
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(base, dir_fd=pinned)
                else:
                    os.unlink(base, dir_fd=pinned)
            finally:
                os.close(pinned)
            return self._parent(parent_rel, _NO_ENTRY)
        os.unlink(base, dir_fd=parent)
        return parent

    def _add_whiteout(self, parent_rel: bytes, parent: int, base: bytes, entry: TarEntry) -> None:
        if base == WHITEOUT_OPAQUE_B:
            self.kernel.setxattr(parent, OVERLAY_OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_META_PREFIX_B):
            return  # other aufs metadata
        hidden = base[len(WHITEOUT_PREFIX_B) :]
        if hidden in (b"", b".", b".."):
            raise InvalidParameter(f"invalid whiteout entry {entry.shown!r}")
        parent = self._make_room(parent_rel, parent, hidden, keep_dir=False)
        name = os.fsdecode(hidden)
        self.kernel.mknodat(parent, name, stat.S_IFCHR | 0o000, 0, 0)
        self.kernel.lchownat(parent, name, entry.uid, entry.gid)

    def _add_file(
        self, reader: TarReader, entry: TarEntry, parent_rel: bytes, parent: int, base: bytes
    ) -> None:
        mode = entry.mode & 0o7777
        try:
            out = os.open(base, _FILE_FLAGS, mode & 0o777, dir_fd=parent)
        except FileExistsError:
            parent = self._make_room(parent_rel, parent, base, keep_dir=False)
            out = os.open(base, _FILE_FLAGS, mode & 0o777, dir_fd=parent)
        try:
            if entry.sparse is not None:
                _copy_sparse(reader, out, entry)
                size = entry.real_size
            else:
                size = entry.size
                if self.split is not None:
                    self.split.reference(_joined(parent_rel, base), size)
                left = size
                write = os.write
                while left:
                    view = reader.take(left)
                    left -= len(view)
                    while view:
                        view = view[write(out, view) :]
            self._file_metadata(out, entry, mode)
        finally:
            os.close(out)
        self.size += size

    def _file_metadata(self, out: int, entry: TarEntry, mode: int) -> None:
        # chown before chmod: chown clears setuid/setgid bits.
        fchown_if_needed(self.kernel, out, entry.uid, entry.gid)
        if mode & self._masked:
            os.fchmod(out, mode)
        if entry.xattrs:
            self._apply_xattrs(out, entry, follow=True)
        os.utime(out, ns=(entry.atime_ns, entry.mtime_ns))

    def _write_small(self, parent: int, base: bytes, entry: TarEntry, data: bytes) -> None:
        """A small new file, on a worker thread (file_pool)."""
        mode = entry.mode & 0o7777
        try:
            out = os.open(base, _FILE_FLAGS, mode & 0o777, dir_fd=parent)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view) :]
                self._file_metadata(out, entry, mode)
            finally:
                os.close(out)
        except (OSError, KernelError) as e:
            raise _entry_error(entry, e) from e

    def _add_dir(
        self, entry: TarEntry, parent_rel: bytes, parent: int, base: bytes, rel: bytes
    ) -> None:
        made = True
        try:
            os.mkdir(base, 0o700, dir_fd=parent)
        except FileExistsError:
            # Dir over dir: keep the contents, take the new metadata.
            parent = self._make_room(parent_rel, parent, base, keep_dir=True)
            try:
                os.mkdir(base, 0o700, dir_fd=parent)
            except FileExistsError:
                made = False
        dfd = os.open(base, _DIR_FLAGS, dir_fd=parent)
        try:
            self._apply_dir_metadata(dfd, rel, entry)
        except BaseException:
            os.close(dfd)
            raise
        # Its children come next: keep it open as their parent.
        self._cache(rel, dfd)
        if made and self._known is not None:
            self._known[self._inodes[dfd]] = set()  # empty, made here (whatever had its inode)

    def _add_symlink(self, entry: TarEntry, parent_rel: bytes, parent: int, base: bytes) -> None:
        # Created as is, even if it points outside: it is resolved inside the
        # container's root at run time, and never followed while unpacking.
        try:
            os.symlink(entry.linkname, base, dir_fd=parent)
        except FileExistsError:
            parent = self._make_room(parent_rel, parent, base, keep_dir=False)
            os.symlink(entry.linkname, base, dir_fd=parent)
        name = os.fsdecode(base)
        made = os.stat(base, dir_fd=parent, follow_symlinks=False)
        if (made.st_uid, made.st_gid) != (entry.uid, entry.gid):
            self.kernel.lchownat(parent, name, entry.uid, entry.gid)
        if entry.xattrs:
            self._apply_xattrs(_proc_path(parent, name), entry, follow=False)
        os.utime(base, ns=(entry.atime_ns, entry.mtime_ns), dir_fd=parent, follow_symlinks=False)

    def _add_special(self, entry: TarEntry, parent_rel: bytes, parent: int, base: bytes) -> None:
        if entry.type != tr.FIFO and not self.allow_devices:
            raise InvalidParameter(f"refusing device node {entry.shown!r} in an untrusted archive")
        parent = self._make_room(parent_rel, parent, base, keep_dir=False)
        name = os.fsdecode(base)
        if entry.type == tr.FIFO:
            os.mkfifo(base, 0o600, dir_fd=parent)
        else:
            kind = stat.S_IFCHR if entry.type == tr.CHR else stat.S_IFBLK
            self.kernel.mknodat(parent, name, kind | 0o600, entry.devmajor, entry.devminor)
        self.kernel.lchownat(parent, name, entry.uid, entry.gid)
        # Not a symlink (we just made it), so following is harmless here.
        os.chmod(base, entry.mode & 0o7777, dir_fd=parent)
        if entry.xattrs:
            self._apply_xattrs(_proc_path(parent, name), entry, follow=False)
        os.utime(base, ns=(entry.atime_ns, entry.mtime_ns), dir_fd=parent, follow_symlinks=False)

    def _add_hardlink(self, entry: TarEntry, parent_rel: bytes, parent: int, base: bytes) -> None:
        target = _layer_relative(entry.linkname, entry, what="hardlink target")
        shown = f"{entry.shown!r} -> {entry.linkname.decode('utf-8', 'backslashreplace')!r}"
        if target == b".":
            raise InvalidParameter(f"invalid hardlink {shown}")
        parent = self._make_room(parent_rel, parent, base, keep_dir=False)
        tdir, _, tname = target.rpartition(b"/")
        tfd = self._open_dir(tdir, entry, create=False) if tdir else os.dup(self.root_fd)
        try:
            # linkat without AT_SYMLINK_FOLLOW: links the entry itself, never
            # what a symlink there points to.
            os.link(tname, base, src_dir_fd=tfd, dst_dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise InvalidParameter(
                f"invalid hardlink {shown}: target does not exist in the layer"
            ) from None
        except PermissionError:
            if stat.S_ISDIR(os.stat(tname, dir_fd=tfd, follow_symlinks=False).st_mode):
                raise InvalidParameter(f"invalid hardlink {shown}: target is a directory") from None
            raise
        finally:
            os.close(tfd)

    # -- metadata ----------------------------------------------------------------

    def _apply_dir_metadata(self, dfd: int, rel: bytes, entry: TarEntry) -> None:
        fchown_if_needed(self.kernel, dfd, entry.uid, entry.gid)
        os.fchmod(dfd, entry.mode & 0o7777)
        if entry.xattrs:
            self._apply_xattrs(dfd, entry, follow=True)
        self._dir_times[rel] = (entry.atime_ns, entry.mtime_ns)

    def _apply_xattrs(self, target: int | str, entry: TarEntry, follow: bool) -> None:
        for attr, raw in entry.xattrs or ():
            # overlayfs control attributes (redirect, metacopy, origin...) would
            # let a layer steer lookups; only "opaque" is meaningful in a tar.
            if attr.startswith("trusted.overlay.") and (
                attr != OVERLAY_OPAQUE_XATTR or raw != b"y"
            ):
                continue
            try:
                self.kernel.setxattr(target, attr, raw, follow)
            except KernelError as e:
                # As dockerd: file systems without (some) xattrs are not fatal.
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def finish(self) -> None:
        self._drain()
        for rel, times in self._dir_times.items():
            fd = self._parents.get(rel)
            if fd is not None:
                os.utime(fd, ns=times)
                continue
            if not rel:
                os.utime(self.root_fd, ns=times)
                continue
            try:
                fd = self._open_dir(rel, _NO_ENTRY, create=False)
            except InvalidParameter:
                continue  # replaced by a later entry
            try:
                os.utime(fd, ns=times)
            finally:
                os.close(fd)


_NO_ENTRY = TarEntry()


def fchown_if_needed(kernel: Kernel, fd: int, uid: int, gid: int) -> None:
    """chown what we just made, unless it is already theirs (the common case: root's
    files unpacked by root). A no-op chown still costs the file system an inode
    update (and a capability check): a third of the time of a small file."""
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (uid, gid):
        kernel.fchown(fd, uid, gid)


def _exists(dir_fd: int, name: bytes) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _entry_error(entry: TarEntry, e: OSError | KernelError) -> DockyardError:
    """What a failed system call while extracting `entry` means to the user."""
    err = e.errno
    if isinstance(e, FileExistsError):
        return InvalidParameter(f"invalid tar entry {entry.shown!r}: {e.strerror}")
    if err in (errno.ENOSPC, errno.EDQUOT) or (isinstance(e, OSError) and storage_full(e)):
        return StorageFull(f"failed to extract {entry.shown!r}: no space left on device")
    if isinstance(e, KernelError) and err == errno.EEXIST:
        return InvalidParameter(f"invalid tar entry {entry.shown!r}: {os.strerror(err)}")
    reason = os.strerror(err) if isinstance(e, KernelError) else (e.strerror or str(e))
    return DockyardError(f"failed to extract {entry.shown!r}: {reason}")


def _resolve_error(entry: TarEntry, path: str, err: int) -> InvalidParameter:
    what = {
        errno.ENOTDIR: "is not a directory",
        errno.ELOOP: "has too many levels of symbolic links",
        errno.ENOENT: "does not exist in the layer",
    }.get(err, os.strerror(err))
    if err == errno.ELOOP:
        return InvalidParameter(
            f"invalid tar entry {entry.shown!r}: too many levels of symbolic links"
        )
    return InvalidParameter(f"invalid tar entry {entry.shown!r}: {path!r} {what}")


def _copy_sparse(reader: TarReader, out: int, entry: TarEntry) -> None:
    """Write only the data regions of a sparse member (GNU or PAX sparse): its
    holes stay holes, as with dockerd (Go's tar reader seeks over them), so a
    small upload cannot become a layer of the size the header claims."""
    end = 0
    for offset, length in entry.sparse or []:
        if offset < end:
            raise InvalidParameter(
                f"invalid layer archive: sparse map of {entry.shown!r} goes back (backward seek)"
            )
        if offset < 0 or length < 0 or offset + length > entry.real_size:
            raise InvalidParameter(f"invalid sparse map in tar entry {entry.shown!r}")
        if length > reader.left:
            raise InvalidParameter(f"truncated sparse data in tar entry {entry.shown!r}")
        pos, left = offset, length
        while left:
            view = reader.take(left)
            left -= len(view)
            while view:
                n = os.pwrite(out, view, pos)
                view, pos = view[n:], pos + n
        end = offset + length
    os.ftruncate(out, entry.real_size)


def _layer_relative(name: bytes, entry: TarEntry, what: str = "path") -> bytes:
    """Normalise a tar name like dockerd: leading "/" dropped, "../" escapes refused."""
    rel = posixpath.normpath(name.lstrip(b"/")) if name.strip(b"/") else b"."
    if rel == b".." or rel.startswith(b"../"):
        shown = name.decode("utf-8", "backslashreplace")
        shown = f"{entry.shown!r} -> {shown!r}" if name is not entry.name else repr(shown)
        raise InvalidParameter(f"invalid tar entry {shown}: {what} is outside of the layer")
    return rel


def _joined(parent_rel: bytes, base: bytes) -> bytes:
    return parent_rel + b"/" + base if parent_rel else base


def _proc_path(dir_fd: int, name: str) -> str:
    # Lets path-only calls (lsetxattr) act on `name` inside an fd we opened safely.
    return f"/proc/self/fd/{dir_fd}/{name}"
