"""The build context's tar unpacked into the build's private directory, each
regular file's sha256 taken as it is written (COPY's cache key then needs no
second read of the context).

Every entry is created relative to a directory fd this unpacker opened itself,
component by component with O_NOFOLLOW: a name with `..` that leaves the
context is refused, a symlink or file where a parent directory should be is
refused (never followed), and files are created with O_EXCL|O_NOFOLLOW. Device
nodes are refused. Owners are not applied: COPY from the context makes files
root's (or --chown's), as dockerd's classic builder does, so they would only
cost a chown per file.

A plain ustar/pax/GNU reader rather than tarfile: a context is many small
files, and tarfile's per-member header handling cost more than the writes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import stat
from collections.abc import Iterator
from typing import NoReturn, Protocol

from dockyard.errors import InvalidParameter, storage_full

_BLOCK = 512
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIRS = 256  # directory fds kept open while unpacking
_MAX_DIGESTS = 500_000  # beyond this many files COPY reads them again (bounded memory)
_MAX_META = 1 << 20  # a pax or GNU long-name record


def _umask() -> int:
    # Read, not set: os.umask() would change it for every thread of the daemon.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: always fchmod


# Mode bits a file created with them may lose; a flag bit beyond 0o7777 marks
# "fchmod needed" (setuid/setgid/sticky are not kept by open's mode either).
UMASK = _umask() | 0o7000 | 0o10000


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Reader:
    """Reads of any size over a stream read in large chunks (a header is 512 bytes)."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self._buf = b""
        self._pos = 0

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end of the stream)."""
        if self._pos >= len(self._buf):
            if n >= _CHUNK:
                return self.stream.read(n)
            self._buf, self._pos = self.stream.read(_CHUNK), 0
        out = self._buf[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    @property
    def buffered(self) -> int:
        """Bytes read from the stream and not yet handed out."""
        return len(self._buf) - self._pos

    def exact(self, n: int) -> bytes:
        out = self.read(n)
        while len(out) < n:
            more = self.read(n - len(out))
            if not more:
                raise InvalidParameter("invalid build context: unexpected end of the tar archive")
            out += more
        return out


def _number(field: bytes) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # base-256 (GNU/star), for big sizes and times
        value = int.from_bytes(field[1:], "big")
        return -value if field[:1] == b"\xff" else value
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise InvalidParameter(
            f"invalid build context: bad number in a tar header: {text!r}"
        ) from None


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise InvalidParameter("invalid build context: bad pax header") from None
        if length <= 0:
            raise InvalidParameter("invalid build context: bad pax header")
        record = data[space + 1 : pos + length]
        pos += length
        key, eq, value = record.rstrip(b"\n").partition(b"=")
        if eq:
            out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
    return out


def _octal(block: bytes, start: int, end: int) -> int:
    """A numeric header field: the plain zero-padded octal that Go's, Python's and our
    CLI's writers emit read by int() at once; anything else (spaces, base-256) by _number."""
    if block[end - 1] in (0, 32):  # the digits end before the field's last byte
        try:
            return int(block[start : end - 1], 8)
        except ValueError:
            pass
    return _number(block[start:end])


def _name_field(block: bytes, start: int, end: int) -> str:
    nul = block.find(b"\0", start, end)
    return block[start : nul if nul >= 0 else end].decode("utf-8", "surrogateescape")


_ZEROS = bytes(_BLOCK)


def members(r: Reader) -> Iterator[tuple[bytes, str, str, int, int, int]]:
    """(type flag, name, link target, size, mode, mtime) of each entry, pax and GNU
    long names applied; the consumer reads each entry's data (and padding)."""
    pax: dict[str, str] = {}
    long_name = long_link = None
    while True:
        block = r.read(_BLOCK)
        if len(block) < _BLOCK:
            if block:
                block += r.exact(_BLOCK - len(block))
            else:
                return  # end of stream without the end blocks: accepted, as Go's reader
        if block == _ZEROS:
            return
        # the checksum counts its own field as blanks (8 * 32)
        want = _octal(block, 148, 155)  # "%06o\0 " as most writers put it
        if sum(block) - sum(block[148:156]) + 256 != want:
            raise InvalidParameter("invalid build context: tar header checksum mismatch")
        kind = block[156:157]
        size = _octal(block, 124, 136)
        if kind in (b"x", b"g", b"L", b"K"):
            if size > _MAX_META:
                raise InvalidParameter("invalid build context: tar header record too large")
            data = r.exact(size + (-size % _BLOCK))[:size]
            if kind == b"x":
                pax.update(_pax(data))
            elif kind == b"L":
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif kind == b"K":
                long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        name = _name_field(block, 0, 100)
        if block[345] and block[257:262] == b"ustar":
            name = _name_field(block, 345, 500) + "/" + name
        link = _name_field(block, 157, 257) if block[157] else ""
        mode = _octal(block, 100, 108) & 0o7777
        if pax or long_name is not None or long_link is not None:
            name = pax.get("path", long_name or name)
            link = pax.get("linkpath", long_link or link)
            if "size" in pax:
                size = int(pax["size"])
            mtime = int(float(pax["mtime"])) if "mtime" in pax else _octal(block, 136, 148)
            pax, long_name, long_link = {}, None, None
        else:
            mtime = _octal(block, 136, 148)
        yield kind, name, link, size, mode, mtime


class ContextUnpacker:
    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self._root_fd = os.open(self.root, _DIR_FLAGS)
        self._dirs: dict[str, int] = {}
        self._dir_times: dict[str, tuple[int, int]] = {}  # rel -> (mode, mtime), set last
        # Real path of each regular file -> sha256 of its content.
        self.digests: dict[str, bytes] = {}

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()
        os.close(self._root_fd)

    # -- directories, never through a link ------------------------------------

    def _dir(self, rel: str) -> int:
        if not rel:
            return self._root_fd
        fd = self._dirs.get(rel)
        if fd is not None:
            return fd
        parent_rel, name = posixpath.split(rel)
        parent = self._dir(parent_rel)
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
        except FileExistsError:
            pass
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise InvalidParameter(
                    f"invalid build context: {rel!r} is not a directory (a link or a file) "
                    "but the archive puts entries below it"
                ) from None
            raise
        self._dirs[rel] = fd
        return fd

    def _parent(self, rel: str) -> tuple[int, str]:
        if len(self._dirs) >= _OPEN_DIRS:
            for fd in self._dirs.values():
                os.close(fd)
            self._dirs.clear()
        parent_rel, name = posixpath.split(rel)
        return self._dir(parent_rel), name

    @staticmethod
    def _clear(parent: int, name: str, keep_dir: bool) -> bool:
        """Make room for an entry (a later entry replaces an earlier one); True
        when a directory is there and kept."""
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            raise InvalidParameter(
                f"invalid build context: an entry replaces the directory {name!r}"
            )
        os.unlink(name, dir_fd=parent)
        return False

    # -- the archive ------------------------------------------------------------

    def unpack(self, stream: Readable) -> None:
        try:
            self._unpack(Reader(stream))
            for rel, (mode, mtime) in sorted(self._dir_times.items(), reverse=True):
                parent, name = self._parent(rel) if rel else (self._root_fd, ".")
                os.chmod(name, mode, dir_fd=parent, follow_symlinks=False)
                os.utime(name, (mtime, mtime), dir_fd=parent, follow_symlinks=False)
        except OSError as e:
            full = storage_full(e)
            if full is not None:
                raise full from None
            raise InvalidParameter(f"invalid build context: {e.strerror}") from None

    def _unpack(self, r: Reader) -> None:
        for kind, name, link, size, mode, mtime in members(r):
            self._entry(r, kind, name, link, size, mode, mtime)

    def _entry(
        self, r: Reader, kind: bytes, name: str, link: str, size: int, mode: int, mtime: int
    ) -> None:
        rel = relative(name)
        if kind == b"5":
            if rel:
                parent, base = self._parent(rel)
                self._clear(parent, base, keep_dir=True)
                self._dir(rel)
            self._dir_times[rel] = (mode, mtime)
            return
        if not rel:
            raise InvalidParameter(f"invalid build context: entry {name!r} is not a directory")
        if kind in (b"0", b"\0", b"7"):
            self._file(r, rel, size, mode, mtime)
            return
        if size:  # data of a member type that has none: skip it
            r.exact(size + (-size % _BLOCK))
        parent, base = self._parent(rel)
        self._clear(parent, base, keep_dir=False)
        if kind == b"2":
            os.symlink(link, base, dir_fd=parent)
            os.utime(base, (mtime, mtime), dir_fd=parent, follow_symlinks=False)
        elif kind == b"1":
            target = relative(link)
            if not target:
                raise InvalidParameter(f"invalid build context: bad hard link {name!r}")
            t_parent, t_name = self._parent(target)
            parent, base = self._parent(rel)  # the cache may have been emptied
            os.link(t_name, base, src_dir_fd=t_parent, dst_dir_fd=parent, follow_symlinks=False)
            digest = self.digests.get(os.path.join(self.root, target))
            if digest is not None:
                self.digests[os.path.join(self.root, rel)] = digest
        elif kind == b"6":
            os.mkfifo(base, mode, dir_fd=parent)
        else:
            refuse_entry(name, kind)

    def _file(self, r: Reader, rel: str, size: int, mode: int, mtime: int) -> None:
        parent, base = self._parent(rel)
        try:
            # The mode as created when the umask keeps it whole (no fchmod then).
            fd = os.open(base, _FILE_FLAGS, mode if mode & UMASK == 0 else 0o600, dir_fd=parent)
        except FileExistsError:  # a later entry replaces an earlier one
            self._clear(parent, base, keep_dir=False)
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=parent)
            mode |= UMASK  # forces the fchmod below
        h = hashlib.sha256()
        try:
            left = size
            while left:
                chunk = r.read(min(left, _CHUNK))
                if not chunk:
                    raise InvalidParameter(
                        "invalid build context: unexpected end of the tar archive"
                    )
                left -= len(chunk)
                h.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if mode & UMASK:
                os.fchmod(fd, mode & 0o7777)
            os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)
        if size % _BLOCK:
            r.exact(_BLOCK - size % _BLOCK)
        if len(self.digests) < _MAX_DIGESTS:
            self.digests[os.path.join(self.root, rel)] = h.digest()


def relative(name: str) -> str:
    """The entry's path inside the context ("" for the context itself)."""
    plain = name.removeprefix("./").rstrip("/")
    if plain and "//" not in plain and "/." not in plain and plain[0] not in "./":
        return plain  # nothing to normalize (the common case, cheaply)
    norm = posixpath.normpath("/" + name.lstrip("/"))
    if ".." in name.split("/") and posixpath.normpath(name.lstrip("/")).startswith(".."):
        raise InvalidParameter(
            f"invalid build context: entry {name!r} is outside of the build context"
        )
    return norm.lstrip("/")


def unpack(stream: Readable, root: str) -> dict[str, bytes]:
    """Unpack the context tar into `root` (which exists); the files' digests."""
    unpacker = ContextUnpacker(root)
    try:
        unpacker.unpack(stream)
    finally:
        unpacker.close()
    return unpacker.digests


def refuse_entry(name: str, kind: bytes) -> NoReturn:
    """The context's answer to a tar entry it does not take (devices, and any type
    besides files, directories, links and fifos)."""
    if kind in (b"3", b"4"):
        raise InvalidParameter(f"invalid build context: {name!r} is a device node")
    raise InvalidParameter(
        f"invalid build context: {name!r} has a tar entry type this builder does not "
        f"take ({kind.decode('latin-1')!r})"
    )
