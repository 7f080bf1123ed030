"""Unpacking a layer tar into a directory without ever writing outside it.

Docker unpacks layers inside a chroot of the destination, so every path and
every symlink met on the way resolves *inside* the layer. We get the same
semantics without chroot: each parent directory is opened component by
component with O_NOFOLLOW relative to the layer root (openat-style), and a
symlink met on the way is resolved by hand against the layer root, never by
the kernel against the host's "/". Entries are then created relative to
that directory fd, so no path string ever reaches outside `dest`.

Docker whiteouts (".wh.NAME", ".wh..wh..opq") are converted to overlayfs
form (0/0 char device, trusted.overlay.opaque=y), as dockerd's overlay2
driver does, so the unpacked directory can be used as a lowerdir as is.

The privileged calls (chown, mknod, xattrs) go through a `Kernel` (DESIGN.md):
the Linux one in the daemon, the recording one in unit tests without root.
Plain file I/O (open, write, mkdir, symlink, link) is done here directly.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import io
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO, Protocol

from dockyard.errors import (
    DockyardError,
    InvalidParameter,
    KernelError,
    StorageFull,
    storage_full,
)
from dockyard.image.forward_reader import ForwardReader

if TYPE_CHECKING:
    from dockyard.kernel.interface import Kernel

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"

_MAX_SYMLINKS = 40  # as the kernel (ELOOP)
_COPY_CHUNK = 1 << 20
_PARENT_CACHE = 512  # directory fds kept open while unpacking
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

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
    except io.UnsupportedOperation as e:  # a member read out of order (ForwardReader)
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
) -> int:
    """Unpack a (possibly compressed) layer tar into `dest`; return the unpacked size.

    The size is the sum of regular file sizes, as dockerd's ApplyLayer counts.
    On error `dest` may hold part of the layer: callers unpack into a private
    temporary directory and rename it into place only on success.
    """
    if dest_fd is None:
        os.makedirs(dest, exist_ok=True)
    unpacker = _LayerUnpacker(dest, dest_fd, kernel)
    unpacker.allow_devices = allow_devices  # False for untrusted archives (docker load)
    try:
        with archive_errors():
            plain = open_decompressed(stream)
            # Random-access mode over a forward-only reader: tarfile's stream mode
            # reads 10 KiB at a time (see forward_reader).
            source = ForwardReader(plain)
            with tarfile.open(fileobj=source, mode="r:", errorlevel=2) as tar:  # type: ignore[call-overload]
                # next() rather than iteration, so that the member list can be
                # dropped as we go: memory stays flat for 100k-entry rootfs tars.
                while (member := tar.next()) is not None:
                    unpacker.add(tar, member)
                    tar.members.clear()
                # Bytes after the end-of-archive blocks may have been read ahead
                # (a DigestingReader below hashed them as they passed).
        unpacker.finish()
    finally:
        unpacker.close()
    return unpacker.size


class _LayerUnpacker:
    def __init__(self, dest: str, dest_fd: int | None = None, kernel: Kernel | None = None) -> None:
        self.allow_devices = True
        # Owners, device nodes and xattrs go through the kernel (a recording one in
        # unit tests without root); plain file I/O does not.
        self.kernel = kernel if kernel is not None else default_kernel()
        # dest_fd: a directory already resolved (docker cp into a container's root)
        self.root_fd = os.dup(dest_fd) if dest_fd is not None else os.open(dest, _DIR_FLAGS)
        self.size = 0
        # Directory mtimes are set at the end: creating children changes them.
        self._dir_times: dict[tuple[str, ...], tuple[int, int]] = {}
        # Resolved parent directories (layer path -> fd, symlink-free path): a
        # rootfs tar goes back and forth between a few hundred directories.
        self._parents: dict[tuple[str, ...], tuple[int, list[str]]] = {}

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root_fd)

    def _drop_cache(self) -> None:
        """Forget every resolved directory: called before anything is removed or
        replaced, so a cached fd never names a directory that is no longer there."""
        parents, self._parents = self._parents, {}
        for fd, _ in parents.values():
            os.close(fd)

    # -- path resolution ---------------------------------------------------------

    def _open_path(self, parts: list[str]) -> int:
        """Open the already-resolved directory `parts` (real dirs only, no symlinks)."""
        fd = os.dup(self.root_fd)
        try:
            for part in parts:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _resolve_dir(self, parts: list[str], entry: str, create: bool) -> tuple[int, list[str]]:
        """Open directory `parts` of the layer, following symlinks *inside* the layer.

        Missing directories are created (mode 0755, as dockerd does) when
        `create` is set. Returns the fd and the resolved (symlink-free) path.
        """
        pending = list(reversed(parts))
        resolved: list[str] = []
        fd = os.dup(self.root_fd)
        links = 0
        try:
            while pending:
                part = pending.pop()
                if part in ("", "."):
                    continue
                if part == "..":
                    # ".." at the layer root stays at the root, like in a chroot.
                    if resolved:
                        resolved.pop()
                        os.close(fd)
                        fd = self._open_path(resolved)
                    continue
                try:
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if not create:
                        raise InvalidParameter(
                            f"invalid tar entry {entry!r}: {'/'.join([*resolved, part])!r} does not exist in the layer"
                        ) from None
                    os.mkdir(part, 0o755, dir_fd=fd)
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise InvalidParameter(
                            f"invalid tar entry {entry!r}: too many levels of symbolic links"
                        )
                    target = os.readlink(part, dir_fd=fd)
                    pending.extend(reversed(target.split("/")))
                    if target.startswith("/"):
                        resolved = []
                        os.close(fd)
                        fd = os.dup(self.root_fd)
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise InvalidParameter(
                        f"invalid tar entry {entry!r}: {'/'.join([*resolved, part])!r} is not a directory"
                    )
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
                resolved.append(part)
        except BaseException:
            os.close(fd)
            raise
        return fd, resolved

    def _parent(self, parts: tuple[str, ...], entry: str) -> tuple[int, list[str]]:
        """Parent directory fd (owned by the cache: do not close) and its resolved path."""
        cached = self._parents.get(parts)
        if cached is not None:
            return cached
        if len(self._parents) >= _PARENT_CACHE:
            self._drop_cache()
        fd, resolved = self._resolve_dir(list(parts), entry, create=True)
        self._parents[parts] = (fd, resolved)
        return fd, resolved

    # -- entries -----------------------------------------------------------------

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = member.name
        rel = _layer_relative(name)
        if rel == ".":
            if member.isdir():
                self._apply_dir_metadata(self.root_fd, (), member)
            return
        parts = tuple(rel.split("/"))
        base = parts[-1]
        if any(p.startswith(WHITEOUT_META_PREFIX) for p in parts[:-1]):
            return  # aufs bookkeeping (.wh..wh.plnk etc.), meaningless for overlay
        try:
            parent_fd, parent_path = self._parent(parts[:-1], name)
            if base.startswith(WHITEOUT_PREFIX):
                self._add_whiteout(parent_fd, base, member)
                return
            self._add_entry(tar, member, parent_fd, parent_path, base)
        except FileExistsError as e:
            raise InvalidParameter(f"invalid tar entry {name!r}: {e.strerror}") from e
        except KernelError as e:  # chown, mknod, xattrs (through the kernel)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(f"failed to extract {name!r}: no space left on device") from e
            if e.errno == errno.EEXIST:
                raise InvalidParameter(f"invalid tar entry {name!r}: {os.strerror(e.errno)}") from e
            raise DockyardError(f"failed to extract {name!r}: {os.strerror(e.errno)}") from e
        except DockyardError:
            raise
        except OSError as e:
            if storage_full(e) is not None:
                raise StorageFull(f"failed to extract {name!r}: no space left on device") from e
            raise DockyardError(f"failed to extract {name!r}: {e.strerror or e}") from e

    def _remove_existing(self, parent_fd: int, base: str, keep_dir: bool) -> None:
        """Docker semantics: a later entry replaces an earlier one, except dir over dir."""
        try:
            st = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if keep_dir and stat.S_ISDIR(st.st_mode):
            return
        self._drop_cache()  # the cached parent might be inside what we remove
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(base, dir_fd=parent_fd)
        else:
            os.unlink(base, dir_fd=parent_fd)

    def _add_whiteout(self, parent_fd: int, base: str, member: tarfile.TarInfo) -> None:
        if base == WHITEOUT_OPAQUE:
            self.kernel.setxattr(parent_fd, OVERLAY_OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other aufs metadata
        hidden = base[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise InvalidParameter(f"invalid whiteout entry {member.name!r}")
        # The cache may hold this parent: keep its fd valid by pinning a dup.
        fd = os.dup(parent_fd)
        try:
            self._remove_existing(fd, hidden, keep_dir=False)
            self.kernel.mknodat(fd, hidden, stat.S_IFCHR | 0o000, 0, 0)
            self.kernel.lchownat(fd, hidden, member.uid, member.gid)
        finally:
            os.close(fd)

    def _add_entry(
        self,
        tar: tarfile.TarFile,
        member: tarfile.TarInfo,
        parent_fd: int,
        parent_path: list[str],
        base: str,
    ) -> None:
        fd = os.dup(parent_fd)  # survives a cache drop in _remove_existing
        try:
            self._remove_existing(fd, base, keep_dir=member.isdir())
            if member.isreg():
                self._add_file(tar, member, fd, base)
            elif member.isdir():
                # Dir over dir: keep the contents, take the new metadata.
                with contextlib.suppress(FileExistsError):
                    os.mkdir(base, 0o700, dir_fd=fd)
                dfd = os.open(base, _DIR_FLAGS, dir_fd=fd)
                try:
                    self._apply_dir_metadata(dfd, (*parent_path, base), member)
                finally:
                    os.close(dfd)
            elif member.issym():
                # Created as is, even if it points outside: it is resolved
                # inside the container's root at run time, and we never
                # follow it while unpacking (see _resolve_dir).
                os.symlink(member.linkname, base, dir_fd=fd)
                self.kernel.lchownat(fd, base, member.uid, member.gid)
                self._apply_xattrs(_proc_path(fd, base), member, follow=False)
                os.utime(base, ns=_times_ns(member), dir_fd=fd, follow_symlinks=False)
            elif member.islnk():
                self._add_hardlink(member, fd, base)
            elif (member.ischr() or member.isblk()) and not self.allow_devices:
                raise InvalidParameter(
                    f"refusing device node {member.name!r} in an untrusted archive"
                )
            elif member.ischr() or member.isblk() or member.isfifo():
                if member.isfifo():
                    os.mkfifo(base, 0o600, dir_fd=fd)
                else:
                    kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                    self.kernel.mknodat(fd, base, kind | 0o600, member.devmajor, member.devminor)
                self.kernel.lchownat(fd, base, member.uid, member.gid)
                # Not a symlink (we just made it), so following is harmless here.
                os.chmod(base, member.mode & 0o7777, dir_fd=fd)
                self._apply_xattrs(_proc_path(fd, base), member, follow=False)
                os.utime(base, ns=_times_ns(member), dir_fd=fd, follow_symlinks=False)
            else:
                raise InvalidParameter(
                    f"unhandled tar header type {member.type!r} for {member.name!r}"
                )
        finally:
            os.close(fd)

    def _add_file(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent_fd: int, base: str
    ) -> None:
        src = tar.extractfile(member)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(base, flags, 0o600, dir_fd=parent_fd)
        try:
            if src is not None and member.sparse is not None:
                _copy_sparse(src, out, member)
            elif src is not None:
                while True:
                    chunk = src.read(_COPY_CHUNK)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        n = os.write(out, view)
                        view = view[n:]
            # chown before chmod: chown clears setuid/setgid bits.
            self.kernel.fchown(out, member.uid, member.gid)
            os.fchmod(out, member.mode & 0o7777)
            self._apply_xattrs(out, member, follow=True)
            os.utime(out, ns=_times_ns(member))
        finally:
            os.close(out)
        self.size += member.size

    def _add_hardlink(self, member: tarfile.TarInfo, parent_fd: int, base: str) -> None:
        target = _layer_relative(member.linkname, what="hardlink target", entry=member.name)
        if target == ".":
            raise InvalidParameter(f"invalid hardlink {member.name!r} -> {member.linkname!r}")
        tparts = target.split("/")
        tfd, _ = self._resolve_dir(tparts[:-1], member.name, create=False)
        try:
            try:
                st = os.stat(tparts[-1], dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                raise InvalidParameter(
                    f"invalid hardlink {member.name!r} -> {member.linkname!r}: target does not exist in the layer"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                raise InvalidParameter(
                    f"invalid hardlink {member.name!r} -> {member.linkname!r}: target is a directory"
                )
            # linkat without AT_SYMLINK_FOLLOW: links the entry itself, never
            # what a symlink there points to.
            os.link(tparts[-1], base, src_dir_fd=tfd, dst_dir_fd=parent_fd, follow_symlinks=False)
        finally:
            os.close(tfd)

    # -- metadata ----------------------------------------------------------------

    def _apply_dir_metadata(self, dfd: int, path: tuple[str, ...], member: tarfile.TarInfo) -> None:
        self.kernel.fchown(dfd, member.uid, member.gid)
        os.fchmod(dfd, member.mode & 0o7777)
        self._apply_xattrs(dfd, member, follow=True)
        self._dir_times[path] = _times_ns(member)

    def _apply_xattrs(self, target: int | str, member: tarfile.TarInfo, follow: bool) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            attr = key[len("SCHILY.xattr.") :]
            raw = value.encode("utf-8", "surrogateescape")
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
        self._drop_cache()
        for path, times in self._dir_times.items():
            try:
                fd = self._open_path(list(path))
            except OSError:
                continue  # replaced by a later entry
            try:
                os.utime(fd, ns=times)
            finally:
                os.close(fd)


def _copy_sparse(src: BinaryIO, out: int, member: tarfile.TarInfo) -> None:
    """Write only the data regions of a sparse member (GNU or PAX sparse): its
    holes stay holes, as with dockerd (Go's tar reader seeks over them), so a
    small upload cannot become a layer of the size the header claims."""
    # The unbuffered reader: a buffered one reads ahead into the next data region,
    # and a stream ("r|") cannot seek back to it.
    raw = getattr(src, "raw", src)
    for offset, length in member.sparse or []:
        if offset < 0 or length < 0 or offset + length > member.size:
            raise InvalidParameter(f"invalid sparse map in tar entry {member.name!r}")
        raw.seek(offset)
        pos, left = offset, length
        while left:
            chunk = raw.read(min(_COPY_CHUNK, left))
            if not chunk:
                raise InvalidParameter(f"truncated sparse data in tar entry {member.name!r}")
            view = memoryview(chunk)
            while view:
                n = os.pwrite(out, view, pos)
                view, pos = view[n:], pos + n
            left -= len(chunk)
    os.ftruncate(out, member.size)


def _layer_relative(name: str, what: str = "path", entry: str | None = None) -> str:
    """Normalise a tar name like dockerd: leading "/" dropped, "../" escapes refused."""
    rel = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if rel == ".." or rel.startswith("../"):
        shown = f"{entry!r} -> {name!r}" if entry is not None else repr(name)
        raise InvalidParameter(f"invalid tar entry {shown}: {what} is outside of the layer")
    return rel


def _times_ns(member: tarfile.TarInfo) -> tuple[int, int]:
    mtime = int(member.mtime * 1_000_000_000)
    atime_s = member.pax_headers.get("atime")
    try:
        atime = int(float(atime_s) * 1_000_000_000) if atime_s else mtime
    except ValueError:
        atime = mtime
    return atime, mtime


def _proc_path(dir_fd: int, name: str) -> str:
    # Lets path-only calls (lsetxattr) act on `name` inside an fd we opened safely.
    return f"/proc/self/fd/{dir_fd}/{name}"
