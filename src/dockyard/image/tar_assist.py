"""Unpacking a layer into a new, empty directory with GNU tar doing the file system work.

A rootfs layer is thousands of small files; creating them is kernel work,
and `tar -x` makes those calls with nothing between them, while our own
unpacker spends tens of microseconds of Python on each. So, for a layer
unpacked into a directory that started empty (load, pull, import), the
plain entries go to a `tar -x` child (kernel/tar_child) through a pipe, and
Python stays the gatekeeper: it reads the stream, records the tar-split,
hashes the diff_id (another thread), and decides every entry.

An entry is forwarded only if tar creating it is provably what
tarsafe._LayerUnpacker would do, which holds because the directory started
empty and we know every name in it (`_kinds`, rel path -> what it is):
- a regular file (not sparse), a directory or a symlink whose layer path is
  new, whose parent is the root or a directory made by this unpack (so no
  ancestor is a symlink or a file);
- a hard link, with the same conditions, to a regular file made by it;
- no whiteout name, no xattrs (the unpacker sets those, and shrugs off a file
  system that refuses them, as dockerd does, where tar would fail), no
  negative time or owner, and names that a ustar/pax header carries as they
  are (a long non-ASCII name would be converted by tar from UTF-8).
Tar is not shown the archive's headers: each forwarded entry gets a header
we write from the values we checked (normalised name, hard link target as
resolved, atime as the unpacker sets it), so no difference
between tar's parser and ours can make tar create something we did not
decide. Tar is run with --keep-old-files, so it never replaces anything.

Everything else (whiteouts, replacements, entries below a symlink, devices,
sparse files, xattrs) is done by the unpacker as before, after the
tar child has finished all it was sent (its stdin closed, its status and
messages checked); a new child starts at the next forwardable entry.

Directory times: tar sets those of the directories it made when it ends
(--delay-directory-restore); one changed afterwards (an entry added in it
by the unpacker or a later child) is set again by the unpacker's `finish`.
"""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING

from dockyard.errors import DockyardError, StorageFull
from dockyard.image import tar_reader as tr
from dockyard.image.early_writeback import EarlyWriteback
from dockyard.kernel.tar_child import TarChild, TarChildFailed, gnu_tar_available

if TYPE_CHECKING:
    from dockyard.image.tar_reader import TarEntry, TarReader
    from dockyard.image.tarsafe import _LayerUnpacker

_DIR, _REG, _SYM, _OTHER = 1, 2, 3, 4
_FORWARDED = (tr.REG, tr.DIR, tr.SYM, tr.LNK)
_KIND_FLAG = {tr.REG: b"0", tr.LNK: b"1", tr.SYM: b"2", tr.DIR: b"5"}
_BLOCK = 512
_ZEROS = bytes(2 * _BLOCK)
_SEND_AT = 256 << 10  # buffered bytes written to the pipe at a time
_DIRECT = 64 << 10  # data chunks at least this big go to the pipe without a copy
EARLY = True  # early writeback (image/early_writeback)
_MAX_NAMES = 200_000  # names remembered; past that the unpacker does the rest
_MAX_OCTAL7 = 0o7777777
_MAX_OCTAL11 = 0o77777777777
_NS = 1_000_000_000
_PAX_NAME = b"././@PaxHeader"
# magic, version, uname and gname empty, no device numbers
_MAGIC_UG_DEV = b"ustar\x0000" + bytes(64) + b"0000000\x000000000\x00"
_TAIL = bytes(12)
_FIXED_SUM = sum(_MAGIC_UG_DEV) + 8 * ord(" ")  # the checksum field counts as spaces


def assist_for(unpacker: _LayerUnpacker, dest: str) -> TarAssist | None:
    """A TarAssist if this unpack can use one: `dest` empty, the real kernel
    (a recording one in tests without root sees every privileged call itself),
    GNU tar installed."""
    from dockyard.kernel.linux import LinuxKernel

    if not isinstance(unpacker.kernel, LinuxKernel) or not gnu_tar_available():
        return None
    if os.listdir(unpacker.root_fd):
        return None
    return TarAssist(unpacker, dest)


class TarAssist:
    """Feeds the forwardable entries of one layer to tar children, the others to
    the unpacker, in stream order."""

    def __init__(self, unpacker: _LayerUnpacker, dest: str) -> None:
        self._unpacker = unpacker
        self._dest = dest
        # The unpacker's own record of names (for its file pool) would miss those
        # tar makes: it stats instead, for the few entries it still does.
        unpacker._known = None
        self._kinds: dict[bytes, int] = {b"": _DIR}
        self._dir_times: dict[bytes, tuple[int, int]] = {}  # directories tar made
        self._session_dirs: list[bytes] = []  # ... by the running child
        self._sealed: set[bytes] = set()  # ... by children that ended (times set)
        self._touched: set[bytes] = set()  # sealed ones changed since
        self._all_touched = False
        self._on = True
        self._child: TarChild | None = None
        self._out = bytearray()
        self._writeback = EarlyWriteback(unpacker.kernel, unpacker.root_fd) if EARLY else None
        self.forwarded = 0  # entries tar made (for tests and benches)
        self.children = 0  # tar processes started

    # -- entries -------------------------------------------------------------------

    def add(self, reader: TarReader, entry: TarEntry) -> None:
        if self._on and self._forward(reader, entry):
            return
        if entry.type == tr.DIR and _is_root(entry.name):
            # The root's owner, mode and xattrs: set beside tar, which makes names
            # in it but never changes it (its times are set at the very end).
            self._unpacker.add(reader, entry)
            return
        self._end_child()
        self._unpacker.add(reader, entry)
        if self._on:
            self._learn(entry)

    def _forward(self, reader: TarReader, entry: TarEntry) -> bool:
        """Send `entry` to tar if that is provably what the unpacker would do."""
        kind = entry.type
        if kind not in _FORWARDED or entry.sparse is not None:
            return False
        rel = _relative(entry.name)
        kinds = self._kinds
        if rel is None or rel in kinds:
            return False
        parent_rel, _, base = rel.rpartition(b"/")
        if kinds.get(parent_rel) != _DIR or base.startswith(b".wh."):
            return False
        if min(entry.mtime_ns, entry.atime_ns, entry.uid, entry.gid) < 0:
            return False  # (a negative owner: the unpacker's chown leaves it as is)
        if entry.xattrs:
            return False  # rare in layers: the unpacker's way (ENOTSUP/EPERM tolerated)
        if kind == tr.LNK:
            link = _relative(entry.linkname.lstrip(b"/"))
            if link is None or kinds.get(link) != _REG:
                return False
        elif kind == tr.SYM:
            link = entry.linkname
            if not link:
                return False
        else:
            link = b""
        size = entry.size if kind == tr.REG else 0
        header = _header(rel, kind, entry, link, size)
        if header is None:
            return False
        if len(kinds) >= _MAX_NAMES:
            self._stop()  # memory stays bounded: the unpacker does the rest
            return False
        if self._child is None:
            self._start()
        if parent_rel in self._sealed:
            self._touched.add(parent_rel)
        out = self._out
        out += header
        if kind == tr.REG:
            unpacker = self._unpacker
            if unpacker.split is not None:
                unpacker.split.reference(rel, size)
            left = size
            while left:
                view = reader.take(left)
                left -= len(view)
                if len(view) >= _DIRECT:
                    self._send(view)
                    out = self._out
                else:
                    out += view
            out += _ZEROS[: -size % _BLOCK]
            unpacker.size += size
            kinds[rel] = _REG
        elif kind == tr.DIR:
            kinds[rel] = _DIR
            self._dir_times[rel] = (entry.atime_ns, entry.mtime_ns)
            self._session_dirs.append(rel)
        elif kind == tr.SYM:
            kinds[rel] = _SYM
        else:
            kinds[rel] = _REG
        self.forwarded += 1
        if len(out) >= _SEND_AT:
            self._send()
        return True

    def _learn(self, entry: TarEntry) -> None:
        """What the unpacker just made of `entry`, into `_kinds` (it succeeded)."""
        rel = _relative(entry.name.lstrip(b"/"))
        if rel is None:
            return  # the root's metadata (an escape was refused by the unpacker)
        parent_rel, _, base = rel.rpartition(b"/")
        if b".wh..wh." in parent_rel and any(
            p.startswith(b".wh..wh.") for p in parent_rel.split(b"/")
        ):
            return  # skipped by the unpacker (aufs bookkeeping)
        kinds = self._kinds
        if kinds.get(parent_rel) == _DIR:
            self._touch(parent_rel)
        elif not self._learn_parents(parent_rel):
            return
        if base.startswith(b".wh."):
            if base.startswith(b".wh..wh."):
                return  # opaque marker (an xattr) or other aufs metadata
            hidden = _joined(parent_rel, base[4:])
            if kinds.get(hidden) == _DIR:
                self._stop()  # a tree removed: not worth following
                return
            kinds[hidden] = _OTHER
            return
        before = kinds.get(rel)
        kind = entry.type
        if kind == tr.DIR:
            kinds[rel] = _DIR
            return
        if before == _DIR:
            self._stop()
            return
        if kind == tr.REG:
            kinds[rel] = _REG
        elif kind == tr.SYM:
            kinds[rel] = _SYM
        elif kind == tr.LNK:
            target = _relative(entry.linkname.lstrip(b"/"))
            found = kinds.get(target) if target is not None else None
            kinds[rel] = found if found in (_REG, _SYM) else _OTHER
        else:
            kinds[rel] = _OTHER

    def _learn_parents(self, parent_rel: bytes) -> bool:
        """The unpacker resolved a parent not known as a directory: those missing
        were made (directories); one that is a symlink or a file was gone
        through, and the model stops (False)."""
        kinds = self._kinds
        path = b""
        for part in parent_rel.split(b"/"):
            below = _joined(path, part)
            known = kinds.get(below)
            if known == _DIR:
                path = below
                continue
            if known is not None:
                self._stop()
                return False
            self._touch(path)
            kinds[below] = _DIR
            path = below
        return True

    def _touch(self, rel: bytes) -> None:
        if rel in self._sealed:
            self._touched.add(rel)

    def _stop(self) -> None:
        """No more forwarding for this layer (the unpacker does the rest)."""
        self._on = False
        self._all_touched = True
        self._kinds = {}

    # -- the child -----------------------------------------------------------------

    def _start(self) -> None:
        # The unpacker's workers may still be writing a file a hard link names.
        self._unpacker._drain()
        self._child = TarChild(self._dest)
        self.children += 1

    def _send(self, view: memoryview | None = None) -> None:
        child = self._child
        assert child is not None
        chunks: list[bytes | bytearray | memoryview] = [self._out]
        if view is not None:
            chunks.append(view)
        self._out = bytearray()
        if self._writeback is not None:
            self._writeback.wrote(sum(len(c) for c in chunks))
        try:
            child.write(chunks)
            if child.said_something():  # it failed on some entry: stop now
                child.finish()
        except TarChildFailed as e:
            self._child = None
            child.kill()
            raise _failure(e) from None

    def _end_child(self) -> None:
        """Everything sent made (tar exited 0, silently), or the error it gave."""
        child = self._child
        if child is None:
            return
        self._out += _ZEROS  # end of archive
        self._send()
        self._child = None
        try:
            child.finish()
        except TarChildFailed as e:
            child.kill()
            raise _failure(e) from None
        except BaseException:
            child.kill()
            raise
        self._sealed.update(self._session_dirs)
        self._session_dirs.clear()

    def finish(self) -> None:
        """The stream is done: end the child; directories changed after their
        child ended are handed to the unpacker's `finish` to be timed again."""
        self._end_child()
        again = self._sealed if self._all_touched else self._touched
        times = self._unpacker._dir_times
        for rel in again:
            times.setdefault(rel, self._dir_times[rel])

    def close(self) -> None:
        """On every way out: no child outlives the unpack."""
        child, self._child = self._child, None
        if child is not None:
            child.kill()
        if self._writeback is not None:
            self._writeback.close()


def _failure(e: TarChildFailed) -> DockyardError:
    text = e.message
    if "No space left on device" in text or "Disk quota exceeded" in text:
        return StorageFull("failed to extract layer: no space left on device")
    if not text:
        text = f"exited with status {e.status}"
        if e.status < 0:
            text = f"killed by signal {-e.status}"
    return DockyardError(f"failed to extract layer: tar: {text.splitlines()[0]}")


def _relative(name: bytes) -> bytes | None:
    """The layer path tarsafe._layer_relative makes of a name already stripped of
    leading slashes; None for the root and for what leaves the layer."""
    if name.startswith(b"./"):
        name = name[2:]  # how `tar -C dir .` names everything
    name = name.rstrip(b"/")
    if name and b"/." not in name and b"//" not in name and name[0] not in b"./":
        return name  # already normal: no empty, "." or ".." component (most names)
    name = name.lstrip(b"/")
    if not name.strip(b"/"):
        return None
    rel = posixpath.normpath(name)
    if rel == b".." or rel.startswith(b"../") or rel == b".":
        return None
    return rel


def _is_root(name: bytes) -> bool:
    name = name.lstrip(b"/")
    return not name.strip(b"/") or posixpath.normpath(name) == b"."


def _joined(parent: bytes, base: bytes) -> bytes:
    return parent + b"/" + base if parent else base


def _record(key: bytes, value: bytes) -> bytes:
    """One pax record, "LEN KEY=VALUE\\n" (LEN counts itself)."""
    n = len(key) + len(value) + 3
    length = n + len(str(n))
    length = n + len(str(length))
    return b"%d %s=%s\n" % (length, key, value)


def _pax_time(ns: int) -> bytes:
    sec, frac = divmod(ns, _NS)
    return b"%d.%09d" % (sec, frac) if frac else b"%d" % sec


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """ustar (prefix, name) for a path, or None if it needs a pax "path"."""
    if len(name) <= 100:
        return b"", name
    cut = name.find(b"/", len(name) - 101)
    if 0 < cut <= 155:
        return name[:cut], name[cut + 1 :]
    return None


def _ustar(
    prefix: bytes,
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    flag: bytes,
    link: bytes,
) -> bytes:
    """A ustar header block (the checksum summed over the fields that vary only)."""
    numbers = b"%07o\x00%07o\x00%07o\x00%011o\x00%011o\x00" % (mode, uid, gid, size, mtime)
    checksum = sum(name) + sum(numbers) + flag[0] + sum(link) + sum(prefix) + _FIXED_SUM
    return b"".join(
        (
            name.ljust(100, b"\x00"),
            numbers,
            b"%06o\x00 " % checksum,
            flag,
            link.ljust(100, b"\x00"),
            _MAGIC_UG_DEV,
            prefix.ljust(155, b"\x00"),
            _TAIL,
        )
    )


_PAX_BLOCKS: dict[int, bytes] = {}


def _pax_block(length: int) -> bytes:
    """The header of a pax record block of `length` bytes (a few lengths recur)."""
    block = _PAX_BLOCKS.get(length)
    if block is None:
        block = _ustar(b"", _PAX_NAME, 0o644, 0, 0, length, 0, b"x", b"")
        if len(_PAX_BLOCKS) < 1024:
            _PAX_BLOCKS[length] = block
    return block


def _header(rel: bytes, kind: int, entry: TarEntry, link: bytes, size: int) -> bytes | None:
    """The blocks that make tar create what the unpacker would make of `entry`
    at `rel`; None if they cannot say it exactly."""
    records = [_record(b"atime", _pax_time(entry.atime_ns))]
    split = _split_name(rel)
    if split is None:
        if not rel.isascii():  # tar would convert a pax path from UTF-8
            return None
        records.append(_record(b"path", rel))
        split = b"", b""
    if len(link) > 100:
        if not link.isascii():
            return None
        records.append(_record(b"linkpath", link))
        link = b""
    mtime, frac = divmod(entry.mtime_ns, _NS)
    if frac or mtime > _MAX_OCTAL11:
        records.append(_record(b"mtime", _pax_time(entry.mtime_ns)))
        if mtime > _MAX_OCTAL11:
            mtime = 0
    uid, gid = entry.uid, entry.gid
    if uid > _MAX_OCTAL7:
        records.append(_record(b"uid", b"%d" % uid))
        uid = 0
    if gid > _MAX_OCTAL7:
        records.append(_record(b"gid", b"%d" % gid))
        gid = 0
    if size > _MAX_OCTAL11:
        records.append(_record(b"size", b"%d" % size))
        size_field = 0
    else:
        size_field = size
    data = b"".join(records)
    pax = _pax_block(len(data))
    main = _ustar(
        split[0],
        split[1],
        entry.mode & 0o7777,
        uid,
        gid,
        size_field,
        mtime,
        _KIND_FLAG[kind],
        link,
    )
    return b"%s%s%s%s" % (pax, data, _ZEROS[: -len(data) % _BLOCK], main)
