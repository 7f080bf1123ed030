"""The build context: the request body (a tar, plain or compressed, or a bare
Dockerfile) unpacked into a private directory of the daemon, streamed: a
context of any size costs a bounded amount of memory.

Unpacking (context_tar) never writes outside the directory, whatever `../`
names or links the archive holds, and refuses device nodes; it takes each
file's digest on the way, for COPY's cache key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import queue
import shutil
import threading
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Any

from dockyard.dockerignore import Matcher, read_patterns
from dockyard.engine.build import context_tar, sources
from dockyard.engine.build.context_index import ContextIndex, IndexedRoot, TooLarge
from dockyard.engine.threads import run_in_thread
from dockyard.errors import DockyardError, InvalidParameter, KernelError
from dockyard.image.tarsafe import open_decompressed
from dockyard.kernel.interface import Kernel

_TAR_MAGIC_OFFSET = 257


@dataclass
class BuildContext:
    """The context as it arrived. Its .dockerignore is the client's business
    (the docker CLI leaves those files out of the tar); the daemon acts on it
    only as dockerd's classic builder does (remotecontext's removeDockerfile):
    once the Dockerfile is read, the .dockerignore and the Dockerfile leave
    the context when its patterns exclude them. A file the patterns name that
    the tar still holds stays a file COPY can read.

    A tar context is first only indexed (context_index); its files are written
    out by `materialize`, the first time a step needs them."""

    root: str  # the unpacked context (empty until materialized, for an indexed tar)
    ignore: Matcher = field(default_factory=lambda: Matcher([]))
    # sha256 of each regular file (by real path), taken while it was unpacked
    digests: dict[str, bytes] = field(default_factory=dict)
    index: ContextIndex | None = None  # while not materialized
    _dropped: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def materialize(self, kernel: Kernel) -> None:
        """Unpack the saved tar into `root` (once; thread-safe)."""
        with self._lock:
            index = self.index
            if index is None:
                return
            with index.saved.open() as f:
                self.digests = context_tar.unpack(f, self.root)
            os.chmod(self.root, 0o700)
            self._unlink(kernel, self._dropped)
            self.index = None
            index.saved.discard()

    def source_root(self, kernel: Kernel) -> sources.SourceRoot | IndexedRoot:
        if self.index is not None:
            return IndexedRoot(self.index)
        return sources.SourceRoot(kernel, self.root, self.digests)

    def drop_build_files(self, kernel: Kernel, dockerfile: str) -> None:
        """Remove the .dockerignore and the Dockerfile (read by now) when the
        .dockerignore's patterns exclude them."""
        if not self.ignore:
            return
        names = [n for n in (".dockerignore", dockerfile) if self.ignore.excluded(n)]
        with self._lock:
            if self.index is not None:
                for name in names:
                    if self.index.file_bytes(name, 0) is None:
                        # not a plain file of the index (behind a link ...): as on disk
                        break
                else:
                    for name in names:
                        self.index.remove(name)
                    self._dropped.extend(names)
                    return
        self.materialize(kernel)
        self._unlink(kernel, names)

    def _unlink(self, kernel: Kernel, names: list[str]) -> None:
        if not names:
            return
        root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in names:
                parent, base = posixpath.split(name)
                # The parent resolved by the kernel inside the context (links too).
                try:
                    fd = kernel.open_in_root(root_fd, "/" + parent, os.O_PATH | os.O_DIRECTORY)
                except KernelError:
                    continue
                try:
                    os.unlink(base, dir_fd=fd)
                except (FileNotFoundError, IsADirectoryError, PermissionError):
                    pass
                finally:
                    os.close(fd)
        finally:
            os.close(root_fd)

    def dockerfile(self, name: str, kernel: Kernel) -> tuple[str, str]:
        """(text, display name) of the Dockerfile, read from inside the context."""
        rel = posixpath.normpath("/" + (name or "Dockerfile")).lstrip("/")
        if self.index is not None:
            candidates = [rel] if name else [rel, "dockerfile"]
            for candidate in candidates:
                data = self.index.file_bytes(candidate, _MAX_DOCKERFILE)
                if data is not None:
                    return _decode(data, rel), rel
            self.materialize(kernel)  # a link, or nothing: as the files say
        path = os.path.join(self.root, rel)
        real = os.path.realpath(path)
        if not (real + "/").startswith(os.path.realpath(self.root) + "/"):
            raise InvalidParameter(f"the Dockerfile ({name}) must be within the build context")
        disk = [real]
        if not name:
            disk.append(os.path.join(self.root, "dockerfile"))
        for candidate in disk:
            try:
                with open(candidate, "rb") as f:
                    return _decode(f.read(_MAX_DOCKERFILE), rel), rel
            except (FileNotFoundError, IsADirectoryError):
                continue
        # dockerd's status for it: 500 (an unclassified error), not 404
        raise DockyardError(f"Cannot locate specified Dockerfile: {name or 'Dockerfile'}")

    def load_ignore(self, kernel: Kernel) -> None:
        if self.index is not None:
            data = self.index.file_bytes(".dockerignore", _MAX_DOCKERFILE)
            if data is not None:
                self.ignore = Matcher(read_patterns(data.decode("utf-8", "replace")))
                return
            if ".dockerignore" not in self.index.entries:
                return
            self.materialize(kernel)
        try:
            path = os.path.join(self.root, ".dockerignore")
            with open(path, encoding="utf-8", errors="replace") as f:
                self.ignore = Matcher(read_patterns(f.read()))
        except (FileNotFoundError, IsADirectoryError):
            pass


_MAX_DOCKERFILE = 16 << 20


def _decode(data: bytes, rel: str) -> str:
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise InvalidParameter(f"{rel}: the Dockerfile is not valid UTF-8") from None


class _Peeked:
    """A stream with its first bytes read ahead (to tell a tar from a Dockerfile)."""

    def __init__(self, head: bytes, stream: object) -> None:
        self.head = head
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size < 0 or size >= len(self.head):
                out, self.head = self.head, b""
                more = self.stream.read(size - len(out) if size >= 0 else -1)  # type: ignore[attr-defined]
                return out + more
            out, self.head = self.head[:size], self.head[size:]
            return out
        return self.stream.read(size)  # type: ignore[attr-defined,no-any-return]


def _read_head(stream: object, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))  # type: ignore[attr-defined]
        if not chunk:
            break
        out += chunk
    return out


def read_context(stream: object, root: str) -> BuildContext:
    """The body as a context in `root` (made here): a tar is indexed (saved beside
    `root`; unpacked into it if it has very many entries); a body that is no
    archive is taken as the Dockerfile itself, as dockerd does."""
    os.makedirs(root, mode=0o700)
    ctx = BuildContext(root)
    plain = open_decompressed(stream)  # type: ignore[arg-type]
    head = _read_head(plain, 512)
    if not head.strip(b"\0") and len(head) in (0, 512):
        return ctx  # an empty archive (or body): no files
    if head[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] != b"ustar" and not _is_v7_tar(head):
        rest = head + _read_head(plain, _MAX_DOCKERFILE)
        with open(os.path.join(root, "Dockerfile"), "wb") as f:
            f.write(rest)
        return ctx
    index = ContextIndex(root, root + ".tar")
    try:
        index.read(_Peeked(head, plain))
    except TooLarge:
        # Too many entries to keep an index of: the files, unpacked as the tar goes on.
        saved = index.saved.open()
        try:
            ctx.digests = context_tar.unpack(_Chained(saved, plain), root)
        finally:
            saved.close()
            index.saved.discard()
        os.chmod(root, 0o700)
        return ctx
    ctx.index = index
    return ctx


class _Chained:
    """What was saved so far, then the rest of the body."""

    def __init__(self, first: object, rest: object) -> None:
        self.parts = [first, rest]

    def read(self, size: int = -1) -> bytes:
        while self.parts:
            data = self.parts[0].read(size)  # type: ignore[attr-defined]
            if data:
                return data  # type: ignore[no-any-return]
            self.parts.pop(0)
        return b""


def _is_v7_tar(head: bytes) -> bool:
    """An old-style tar header: a name, then an octal checksum that adds up."""
    if len(head) < 512:
        return False
    try:
        want = int(head[148:156].split(b"\0")[0].strip() or b"-1", 8)
    except ValueError:
        return False
    have = sum(head[:148]) + 8 * 32 + sum(head[156:512])
    return want == have


class _ChunkStream:
    """The request body's chunks handed to the indexing thread through a small
    bounded queue: the loop hands a chunk over without a thread hop of its own
    (consume_in_thread's pipe costs one per write, as much as a cached build's
    whole indexing). At most _QUEUED chunks wait: memory stays bounded."""

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(_QUEUED)
        self._buf = b""
        self._pos = 0
        self._eof = False

    def read(self, size: int = -1, /) -> bytes:
        while self._pos >= len(self._buf):
            if self._eof:
                return b""
            item = self.queue.get()
            if item is None:
                self._eof = True
                return b""
            self._buf, self._pos = item, 0
        end = len(self._buf) if size < 0 else self._pos + size
        out = self._buf[self._pos : end]
        self._pos += len(out)
        return out


_QUEUED = 16


async def _hand_over(stream: _ChunkStream, item: bytes | None, job: asyncio.Future[Any]) -> bool:
    """Queue one chunk (None: the end) unless the reader has stopped; False then."""
    try:
        stream.queue.put_nowait(item)
        return True
    except queue.Full:
        pass
    while not job.done():
        try:
            await asyncio.to_thread(stream.queue.put, item, True, 0.2)
            return True
        except queue.Full:
            continue
    return False


async def receive_context(chunks: AsyncIterable[bytes], root: str, kernel: Kernel) -> BuildContext:
    stream = _ChunkStream()

    def work() -> BuildContext:
        ctx = read_context(stream, root)
        ctx.load_ignore(kernel)
        return ctx

    job = run_in_thread(work, "build-context")
    try:
        try:
            async for chunk in chunks:
                if not await _hand_over(stream, bytes(chunk), job):
                    break  # the reader failed: its error is the one raised
        finally:
            # The end (or, if the upload broke off, a truncated stream the reader
            # refuses); the reader is waited for, so the clean-up runs after it.
            await _hand_over(stream, None, job)
        return await asyncio.shield(job)
    except BaseException:
        with contextlib.suppress(BaseException):
            await asyncio.shield(job)
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(root + ".tar")
        raise


async def fetch_context(url: str, root: str, kernel: Kernel) -> BuildContext:
    """`remote=`: a tar (plain or compressed) or a Dockerfile, fetched over http(s)."""
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")) or url.endswith(".git"):
        raise InvalidParameter(
            f"remote context {url!r}: only http(s) URLs of a tar or a Dockerfile are supported "
            "(not git repositories)"
        )

    def work() -> BuildContext:
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - http(s) only
                ctx = read_context(resp, root)
        except urllib.error.HTTPError as e:
            raise InvalidParameter(f"remote context {url}: {e.code} {e.reason}") from None
        except OSError as e:
            raise InvalidParameter(f"remote context {url}: {e}") from None
        ctx.load_ignore(kernel)
        return ctx

    try:
        return await asyncio.to_thread(work)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(root + ".tar")
        raise
