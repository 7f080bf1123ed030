"""The files a COPY or ADD reads: found in a root (the context, or another
stage's or image's files), checksummed for the cache and written as a tar.

A source path is resolved by the kernel inside its root
(openat2(RESOLVE_IN_ROOT)): `../x` and symlinks pointing out of the context
stay inside it. Below a source directory nothing is followed: a symlink is
copied as a symlink. The checksum covers names, types, modes, owners, link
targets and contents, not mtimes, as the classic builder's cache does.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from dockyard.errors import InvalidParameter, KernelError, NotFound
from dockyard.kernel.interface import Kernel

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_WILDCARDS = set("*?[")


@dataclass(slots=True)
class Entry:
    """One file to copy: its name in the destination and where it is now."""

    name: str  # relative to the extraction directory ("" = the directory itself)
    path: str  # real path on the host, inside the source root
    st: os.stat_result
    link: str | None = None  # a symlink's target when known without reading it


@dataclass
class Source:
    """One source argument, resolved."""

    arg: str
    path: str  # real path (inside the root)
    is_dir: bool
    rel: str  # path relative to the root


class SourceRoot:
    """A directory whose files COPY reads: the build context or a mounted image."""

    virtual = False  # its files are on disk (context_index.IndexedRoot: not yet)

    def __init__(
        self,
        kernel: Kernel,
        path: str,
        digests: dict[str, bytes] | None = None,
    ) -> None:
        self.kernel = kernel
        self.path = os.path.realpath(path)
        # sha256 of files by real path, known from unpacking (the context's)
        self.digests = digests or {}
        self._fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self._fd)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    def head(self, path: str, n: int) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read(n)
        except OSError:
            return b""

    def resolve(self, arg: str, what: str) -> list[Source]:
        """Sources for one argument: a path, or a wildcard pattern's matches."""
        rel = context_path(arg, what)
        if has_wildcard(rel):
            return self._glob(arg, rel, what)
        return [self._source(arg, rel, what)]

    def _source(self, arg: str, rel: str, what: str) -> Source:
        try:
            fd = self.kernel.open_in_root(self._fd, "/" + rel, os.O_PATH)
        except KernelError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                raise NotFound(
                    f"{what} failed: file not found in build context or excluded by "
                    f".dockerignore: stat {arg}: file does not exist"
                ) from None
            if e.errno == errno.ELOOP:
                raise InvalidParameter(
                    f"{what} failed: {arg}: {os.strerror(errno.ELOOP)}"
                ) from None
            raise
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        if real != self.path and not real.startswith(self.path + "/"):
            raise InvalidParameter(
                f"{what} failed: forbidden path outside the build context: {arg}"
            )
        return Source(arg, real, is_dir, os.path.relpath(real, self.path))

    def _glob(self, arg: str, pattern: str, what: str) -> list[Source]:
        found = []
        for rel in self._all_paths():
            if fnmatch.fnmatchcase(rel, pattern) and same_depth(rel, pattern):
                found.append(self._source(rel, rel, what))
        if not found:
            raise NotFound(f"{what} failed: no source files were specified")
        return found

    def _all_paths(self) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames.sort()
            base = os.path.relpath(dirpath, self.path)
            for name in sorted(dirnames + filenames):
                yield name if base == "." else f"{base}/{name}"

    def entries(self, source: Source, name: str) -> Iterator[Entry]:
        """`source` (a directory: what it holds) named `name` in the destination."""
        if not source.is_dir:
            yield Entry(name, source.path, os.stat(source.path))
            return
        yield from self._walk(source.path, name)

    def _walk(self, directory: str, prefix: str) -> Iterator[Entry]:
        with os.scandir(directory) as it:
            items = sorted(it, key=lambda e: e.name)
        for item in items:
            st = item.stat(follow_symlinks=False)
            name = f"{prefix}/{item.name}" if prefix else item.name
            if stat.S_ISDIR(st.st_mode):
                yield Entry(name, item.path, st)
                yield from self._walk(item.path, name)
            elif not stat.S_ISSOCK(st.st_mode):
                yield Entry(name, item.path, st)


def same_depth(rel: str, pattern: str) -> bool:
    # filepath.Match: "*" never crosses a "/".
    return rel.count("/") == pattern.count("/")


def has_wildcard(src: str) -> bool:
    return bool(_WILDCARDS & set(src))


@dataclass
class Ownership:
    uid: int | None = None  # None: keep 0 (COPY resets owners to root)
    gid: int | None = None
    mode: int | None = None  # --chmod


def _kind(entry: Entry) -> tuple[bytes, str, int]:
    """(tar type, link target, size) of an entry."""
    st = entry.st
    if stat.S_ISREG(st.st_mode):
        return tarfile.REGTYPE, "", st.st_size
    if stat.S_ISDIR(st.st_mode):
        return tarfile.DIRTYPE, "", 0
    if stat.S_ISLNK(st.st_mode):
        return tarfile.SYMTYPE, entry.link if entry.link is not None else os.readlink(entry.path), 0
    if stat.S_ISFIFO(st.st_mode):
        return tarfile.FIFOTYPE, "", 0
    raise InvalidParameter(f"cannot copy {entry.name}: a device node")


def header(entry: Entry, own: Ownership) -> tarfile.TarInfo:
    st = entry.st
    info = tarfile.TarInfo(entry.name)
    info.mode = own.mode if own.mode is not None else stat.S_IMODE(st.st_mode)
    info.uid = own.uid or 0
    info.gid = own.gid or 0
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    info.type, info.linkname, info.size = _kind(entry)
    return info


class Digests(Protocol):
    """Files' content digests by real path (a dict, or the context index's)."""

    def get(self, path: str, /) -> bytes | None: ...


def checksum(entries: list[Entry], own: Ownership, known: Digests | None = None) -> str:
    """Hex sha256 over what the copy produces, mtimes excepted; `known` gives
    files' content digests already taken (by real path)."""
    known = known or {}
    h = hashlib.sha256()
    owner = f"{own.uid or 0}:{own.gid or 0}"
    # The same bytes as one update per field would hash, gathered into one update
    # per _HASH_BATCH entries (a call per field cost as much as the fields).
    parts: list[bytes] = []
    add = parts.append
    for entry in entries:
        # the fields of header(entry, own), without a TarInfo each
        kind, link, size = _kind(entry)
        mode = own.mode if own.mode is not None else entry.st.st_mode & 0o7777
        add(
            f"{entry.name}\0{kind!r}\0{mode:o}\0{owner}\0{link}\0{size}\0".encode(
                "utf-8", "surrogateescape"
            )
        )
        if kind == tarfile.REGTYPE:
            add(known.get(entry.path) or _file_digest(entry.path))
        if len(parts) >= _HASH_BATCH:
            h.update(b"".join(parts))
            parts.clear()
    h.update(b"".join(parts))
    return h.hexdigest()


_HASH_BATCH = 4096


def _file_digest(path: str) -> bytes:
    fd = os.open(path, _READ)
    try:
        os.set_blocking(fd, True)
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        return h.digest()
    finally:
        os.close(fd)


class _FdReader:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, size: int = -1) -> bytes:
        return os.read(self.fd, size if size >= 0 else 1 << 20)


def write_tar(entries: list[Entry], own: Ownership, out: BinaryIO) -> None:
    """The entries as a tar, hard links kept as links between copied files."""
    seen: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for entry in entries:
            info = header(entry, own)
            if info.type != tarfile.REGTYPE:
                tar.addfile(info)
                continue
            key = (entry.st.st_dev, entry.st.st_ino)
            if entry.st.st_nlink > 1 and key in seen:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, seen[key], 0
                tar.addfile(info)
                continue
            seen[key] = info.name
            fd = os.open(entry.path, _READ)
            try:
                os.set_blocking(fd, True)
                tar.addfile(info, _FdReader(fd))  # type: ignore[arg-type]
            finally:
                os.close(fd)


def context_path(arg: str, what: str) -> str:
    """A COPY/ADD source argument as a path relative to the context's root; one that
    climbs out of it (`../x`) is refused, as dockerd refuses it."""
    if posixpath.normpath(arg).startswith("../") or posixpath.normpath(arg) == "..":
        raise InvalidParameter(f"{what} failed: forbidden path outside the build context: {arg}")
    return posixpath.normpath("/" + arg).lstrip("/")
