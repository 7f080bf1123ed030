"""The build context: the request body (a tar, plain or compressed, or a bare
Dockerfile) unpacked into a private directory of the daemon, streamed: a
context of any size costs a bounded amount of memory.

Unpacking (context_tar) never writes outside the directory, whatever `../`
names or links the archive holds, and refuses device nodes; it takes each
file's digest on the way, for COPY's cache key.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import shutil
from collections.abc import AsyncIterable
from dataclasses import dataclass, field

from dockyard.dockerignore import Matcher, read_patterns
from dockyard.engine.build import context_tar
from dockyard.engine.threads import consume_in_thread
from dockyard.errors import InvalidParameter, KernelError, NotFound
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
    the tar still holds stays a file COPY can read."""

    root: str  # the unpacked context
    ignore: Matcher  # the context's .dockerignore
    # sha256 of each regular file (by real path), taken while it was unpacked
    digests: dict[str, bytes] = field(default_factory=dict)

    def drop_build_files(self, kernel: Kernel, dockerfile: str) -> None:
        """Remove the .dockerignore and the Dockerfile (read by now) when the
        .dockerignore's patterns exclude them."""
        if not self.ignore:
            return
        root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in (".dockerignore", dockerfile):
                if not self.ignore.excluded(name):
                    continue
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

    def dockerfile(self, name: str) -> tuple[str, str]:
        """(text, display name) of the Dockerfile, read from inside the context."""
        rel = posixpath.normpath("/" + (name or "Dockerfile")).lstrip("/")
        path = os.path.join(self.root, rel)
        real = os.path.realpath(path)
        if not (real + "/").startswith(os.path.realpath(self.root) + "/"):
            raise InvalidParameter(f"the Dockerfile ({name}) must be within the build context")
        candidates = [real]
        if not name:
            candidates.append(os.path.join(self.root, "dockerfile"))
        for candidate in candidates:
            try:
                with open(candidate, "rb") as f:
                    data = f.read(16 << 20)
            except (FileNotFoundError, IsADirectoryError):
                continue
            try:
                return data.decode("utf-8").removeprefix("\ufeff"), rel
            except UnicodeDecodeError:
                raise InvalidParameter(f"{rel}: the Dockerfile is not valid UTF-8") from None
        raise NotFound(f"Cannot locate specified Dockerfile: {name or 'Dockerfile'}")


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


def unpack_context(stream: object, root: str) -> dict[str, bytes]:
    """Unpack the body into `root` (made here); a body that is no archive is
    taken as the Dockerfile itself, as dockerd does. The files' digests."""
    os.makedirs(root, mode=0o700)
    plain = open_decompressed(stream)  # type: ignore[arg-type]
    head = _read_head(plain, 512)
    if not head.strip(b"\0") and len(head) in (0, 512):
        return {}  # an empty archive (or body): no files
    if head[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] != b"ustar" and not _is_v7_tar(head):
        rest = head + _read_head(plain, 16 << 20)
        with open(os.path.join(root, "Dockerfile"), "wb") as f:
            f.write(rest)
        return {}
    digests = context_tar.unpack(_Peeked(head, plain), root)
    os.chmod(root, 0o700)
    return digests


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


async def receive_context(chunks: AsyncIterable[bytes], root: str) -> BuildContext:
    digests: dict[str, bytes] = {}

    def work(stream: object) -> None:
        digests.update(unpack_context(stream, root))

    try:
        await consume_in_thread(chunks, work, "build-context")  # type: ignore[arg-type]
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return BuildContext(root, load_ignore(root), digests)


async def fetch_context(url: str, root: str) -> BuildContext:
    """`remote=`: a tar (plain or compressed) or a Dockerfile, fetched over http(s)."""
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")) or url.endswith(".git"):
        raise InvalidParameter(
            f"remote context {url!r}: only http(s) URLs of a tar or a Dockerfile are supported "
            "(not git repositories)"
        )

    digests: dict[str, bytes] = {}

    def work() -> None:
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - http(s) only
                digests.update(unpack_context(resp, root))
        except urllib.error.HTTPError as e:
            raise InvalidParameter(f"remote context {url}: {e.code} {e.reason}") from None
        except OSError as e:
            raise InvalidParameter(f"remote context {url}: {e}") from None

    try:
        await asyncio.to_thread(work)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return BuildContext(root, load_ignore(root), digests)


def load_ignore(root: str) -> Matcher:
    try:
        with open(os.path.join(root, ".dockerignore"), encoding="utf-8", errors="replace") as f:
            return Matcher(read_patterns(f.read()))
    except (FileNotFoundError, IsADirectoryError):
        return Matcher([])
