"""The build context as an index of its tar: names, types, modes, sizes, link
targets and content digests, with the tar kept beside (saved_tar: in memory while small).

A build whose COPY and ADD steps all come from the cache never needs the
context's files: their checksums come from this index, and the Dockerfile and
.dockerignore are read from the tar. Only a step that really copies unpacks
the context (context_tar.ContextUnpacker, from the saved tar), once. Unpacking
hundreds of small files costs more than the rest of a cached build together.

The index refuses what the unpacker refuses (names out of the context, entries
below a link or a file, device nodes, bad headers) and resolves a source the
way the kernel does on the unpacked directory (openat2 RESOLVE_IN_ROOT:
symlinks followed inside the context, `..` stopping at its root), so a
checksum from the index is the one the unpacked files give.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from dockyard.engine.build import context_tar
from dockyard.engine.build.saved_tar import SavedTar
from dockyard.engine.build.sources import Entry, Source, context_path, has_wildcard, same_depth
from dockyard.errors import InvalidParameter, NotFound

MAX_ENTRIES = 200_000  # beyond this many entries the context is unpacked at once
_MAX_LINKS = 40  # as the kernel (ELOOP)
_KINDS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "fifo": stat.S_IFIFO}


class TooLarge(Exception):
    """More entries than an index keeps: unpack instead."""


@dataclass(slots=True)
class IndexEntry:
    kind: str  # file, dir, symlink, fifo
    mode: int  # permission bits as the unpacked entry has them
    size: int = 0
    mtime: int = 0
    link: str = ""  # a symlink's target
    offset: int = -1  # of a file's data in the saved tar
    digest: bytes = b""


class _Tee:
    """Reads of the request body, written on to the saved tar as they go."""

    def __init__(self, stream: context_tar.Readable, out: SavedTar) -> None:
        self.stream = stream
        self.out = out
        self.position = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self.stream.read(size)
        self.out.write(data)
        self.position += len(data)
        return data


class ContextIndex:
    def __init__(self, root: str, tar_path: str) -> None:
        self.root = os.path.realpath(root)
        self.saved = SavedTar(tar_path)  # in memory while small, else in tar_path
        self.entries: dict[str, IndexEntry] = {"": IndexEntry("dir", 0o700)}
        self.children: dict[str, set[str]] = {"": set()}
        self._umask = context_tar.UMASK & 0o777

    # -- building it ------------------------------------------------------------

    def read(self, stream: context_tar.Readable) -> None:
        """Index the tar that `stream` holds, saving it (`saved`)."""
        try:
            tee = _Tee(stream, self.saved)
            r = context_tar.Reader(tee)
            for kind, name, link, size, mode, mtime in context_tar.members(r):
                if len(self.entries) > MAX_ENTRIES:
                    raise TooLarge
                # the data starts where the reader's buffer has got to
                offset = tee.position - r.buffered
                self._add(r, kind, name, link, size, mode, mtime, offset)
        finally:
            self.saved.close()

    def _parent_dirs(self, rel: str) -> None:
        """The directories above `rel` exist (implicitly made, as mkdir would)."""
        parent = rel.rpartition("/")[0]
        if not parent:
            return
        entry = self.entries.get(parent)
        if entry is None:
            self._parent_dirs(parent)
            self._put(parent, IndexEntry("dir", 0o755 & ~self._umask))
        elif entry.kind != "dir":
            raise InvalidParameter(
                f"invalid build context: {parent!r} is not a directory (a link or a file) "
                "but the archive puts entries below it"
            )

    def _put(self, rel: str, entry: IndexEntry) -> None:
        self.entries[rel] = entry
        parent, _, base = rel.rpartition("/")
        self.children.setdefault(parent, set()).add(base)
        if entry.kind == "dir":
            self.children.setdefault(rel, set())

    def _replace(self, rel: str, name: str) -> None:
        old = self.entries.get(rel)
        if old is not None and old.kind == "dir":
            raise InvalidParameter(
                f"invalid build context: an entry replaces the directory {name!r}"
            )

    def _add(
        self,
        r: context_tar.Reader,
        kind: bytes,
        name: str,
        link: str,
        size: int,
        mode: int,
        mtime: int,
        offset: int,
    ) -> None:
        rel = context_tar.relative(name)
        if kind == b"5":
            if rel:
                self._parent_dirs(rel)
                old = self.entries.get(rel)
                if old is None or old.kind != "dir":
                    self._put(rel, IndexEntry("dir", mode, mtime=mtime))
                else:
                    old.mode, old.mtime = mode, mtime
            return
        if not rel:
            raise InvalidParameter(f"invalid build context: entry {name!r} is not a directory")
        if kind in (b"0", b"\0", b"7"):
            self._parent_dirs(rel)
            self._replace(rel, name)
            h = hashlib.sha256()
            left = size
            while left:
                chunk = r.read(min(left, 1 << 20))
                if not chunk:
                    raise InvalidParameter(
                        "invalid build context: unexpected end of the tar archive"
                    )
                h.update(chunk)
                left -= len(chunk)
            if size % 512:
                r.exact(512 - size % 512)
            self._put(rel, IndexEntry("file", mode, size, mtime, offset=offset, digest=h.digest()))
            return
        if size:
            r.exact(size + (-size % 512))
        self._parent_dirs(rel)
        if kind == b"2":
            self._replace(rel, name)
            self._put(rel, IndexEntry("symlink", 0o777, len(link), mtime, link=link))
        elif kind == b"1":
            target = context_tar.relative(link)
            found = self.entries.get(target) if target else None
            if found is None or found.kind == "dir":
                raise InvalidParameter(f"invalid build context: bad hard link {name!r} -> {link!r}")
            self._replace(rel, name)
            self._put(rel, dataclasses.replace(found))
        elif kind == b"6":
            self._replace(rel, name)
            self._put(rel, IndexEntry("fifo", mode & ~self._umask, mtime=mtime))
        else:
            context_tar.refuse_entry(name, kind)

    # -- reading it -------------------------------------------------------------

    def file_bytes(self, rel: str, limit: int) -> bytes | None:
        """A plain file's content (up to `limit`), None when `rel` is no plain
        file of the index (missing, a link, a directory)."""
        entry = self.entries.get(rel)
        if entry is None or entry.kind != "file":
            return None
        return self.saved.read_at(entry.offset, min(entry.size, limit))

    def remove(self, rel: str) -> None:
        entry = self.entries.pop(rel, None)
        if entry is not None:
            parent, base = posixpath.split(rel)
            self.children.get(parent, set()).discard(base)

    def digests(self) -> IndexDigests:
        return IndexDigests(self)

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _rel(self, path: str) -> str:
        return "" if path == self.root else path[len(self.root) + 1 :]


class IndexDigests:
    """The files' digests by real path (what sources.checksum looks up), read from
    the index when asked: no dict of every file made up front."""

    def __init__(self, index: ContextIndex) -> None:
        self.index = index

    def get(self, path: str) -> bytes | None:
        if not path.startswith(self.index.root + "/"):
            return None  # not the context's (a heredoc's or a download's file)
        entry = self.index.entries.get(self.index._rel(path))
        return entry.digest if entry is not None and entry.kind == "file" else None


class IndexedRoot:
    """sources.SourceRoot's answers for the build context, from its index."""

    virtual = True

    def __init__(self, index: ContextIndex) -> None:
        self.index = index
        self.path = index.root
        self.digests = index.digests()

    def close(self) -> None:
        pass

    def resolve(self, arg: str, what: str) -> list[Source]:
        rel = context_path(arg, what)
        if has_wildcard(rel):
            found = [
                self._source(p, p, what)
                for p in self._all_paths()
                if _fnmatch(p, rel) and same_depth(p, rel)
            ]
            if not found:
                raise NotFound(f"{what} failed: no source files were specified")
            return found
        return [self._source(arg, rel, what)]

    def _source(self, arg: str, rel: str, what: str) -> Source:
        real = self._resolve(rel, f"{what} failed: {arg}")
        if real is None:
            raise NotFound(
                f"{what} failed: file not found in build context or excluded by "
                f".dockerignore: stat {arg}: file does not exist"
            )
        is_dir = self.index.entries[real].kind == "dir"
        return Source(arg, self.index._path(real), is_dir, real or ".")

    def _resolve(self, rel: str, loop_error: str) -> str | None:
        """The path `rel` leads to inside the context, links followed as
        RESOLVE_IN_ROOT does; None where it leads nowhere."""
        parts = [p for p in rel.split("/") if p and p != "."]
        cur: list[str] = []
        links = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if cur:
                    cur.pop()
                continue
            path = "/".join([*cur, part])
            entry = self.index.entries.get(path)
            if entry is None:
                return None
            if entry.kind == "symlink":
                links += 1
                if links > _MAX_LINKS:
                    raise InvalidParameter(f"{loop_error}: {os.strerror(errno.ELOOP)}")
                if entry.link.startswith("/"):
                    cur = []
                parts = [p for p in entry.link.split("/") if p and p != "."] + parts
                continue
            if parts and entry.kind != "dir":
                return None
            cur.append(part)
        return "/".join(cur)

    def _all_paths(self) -> Iterator[str]:
        # os.walk's order (sources.SourceRoot walks the unpacked directory so).
        def walk(directory: str) -> Iterator[str]:
            names = sorted(self.index.children.get(directory, ()))
            paths = [f"{directory}/{n}" if directory else n for n in names]
            yield from paths
            for p in paths:
                if self.index.entries[p].kind == "dir":
                    yield from walk(p)

        yield from walk("")

    def entries(self, source: Source, name: str) -> Iterator[Entry]:
        if not source.is_dir:
            yield self._entry(name, source.path)
            return
        yield from self._walk(self.index._rel(source.path), name)

    def _walk(self, directory: str, prefix: str) -> Iterator[Entry]:
        entries, root = self.index.entries, self.index.root
        for child in sorted(self.index.children.get(directory, ())):
            rel = f"{directory}/{child}" if directory else child
            name = f"{prefix}/{child}" if prefix else child
            e = entries[rel]
            yield Entry(name, f"{root}/{rel}", _stat(e), e.link if e.kind == "symlink" else None)
            if e.kind == "dir":
                yield from self._walk(rel, name)

    def _entry(self, name: str, path: str) -> Entry:
        e = self.index.entries[self.index._rel(path)]
        return Entry(name, path, _stat(e), link=e.link if e.kind == "symlink" else None)

    def stat(self, path: str) -> os.stat_result:
        return _stat(self.index.entries[self.index._rel(path)])

    def head(self, path: str, n: int) -> bytes:
        return self.index.file_bytes(self.index._rel(path), n) or b""


def _stat(e: IndexEntry) -> os.stat_result:
    return os.stat_result(
        (_KINDS[e.kind] | e.mode, 0, 0, 1, 0, 0, e.size, e.mtime, e.mtime, e.mtime)
    )


def _fnmatch(path: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(path, pattern)
