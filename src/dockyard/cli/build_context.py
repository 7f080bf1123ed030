"""`dockyard build`'s two halves beside the request: the context tar made from a
directory while it is sent (.dockerignore applied, the Dockerfile always in
it), and the display of the build stream with each step's duration."""

from __future__ import annotations

import os
import stat
import time

from dockyard.dockerignore import Matcher, read_patterns

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO, Any


def _ignore(root: str) -> Matcher:
    try:
        with open(os.path.join(root, ".dockerignore"), encoding="utf-8", errors="replace") as f:
            return Matcher(read_patterns(f.read()))
    except (FileNotFoundError, IsADirectoryError):
        return Matcher([])


def directory_tar(root: str, dockerfile: str) -> tuple[IO[bytes], str, Callable[[], None]]:
    """(stream of the context tar, the Dockerfile's name in it, close)."""
    root = os.path.abspath(root)
    ignore = _ignore(root)
    extra: tuple[str, str] | None = None  # (name in the tar, path) of an outside Dockerfile
    if dockerfile:
        path = dockerfile if os.path.isabs(dockerfile) else os.path.join(os.getcwd(), dockerfile)
        if not os.path.exists(path) and not os.path.isabs(dockerfile):
            path = os.path.join(root, dockerfile)
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise OSError(f"Cannot locate specified Dockerfile: {dockerfile}")
        rel = os.path.relpath(path, root)
        if rel.startswith(".."):
            # As the docker CLI: a Dockerfile outside the context travels under a random name.
            name = f".dockerfile.{os.urandom(10).hex()}"
            extra = (name, path)
        else:
            name = rel
    else:
        name = "Dockerfile"
        if not os.path.exists(os.path.join(root, name)):
            raise OSError(f"Cannot locate specified Dockerfile: {name}")
    always = {name, ".dockerignore"}
    stream = _ContextStream(root, ignore, always, extra)
    return stream, name, stream.close


_PIECE = 256 << 10


class _ContextStream:
    """The context tar, made as the request reads it: no thread, no pipe, and a
    file that cannot be read is an error of the command (not a short archive)."""

    def __init__(
        self, root: str, ignore: Matcher, always: set[str], extra: tuple[str, str] | None
    ) -> None:
        self._buf = bytearray()
        self._parts = self._produce(root, ignore, always, extra)
        self._done = False

    def write(self, data: bytes) -> None:
        self._buf += data

    def _produce(
        self, root: str, ignore: Matcher, always: set[str], extra: tuple[str, str] | None
    ) -> Iterator[None]:
        writer = _TarWriter(self)
        yield from _add_tree(writer, root, "", ignore, always)
        if extra is not None:
            yield from writer.add(extra[1], extra[0], os.stat(extra[1]))
        self._buf += b"\0" * 1024  # the end of the archive

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buf) < size) and not self._done:
            try:
                next(self._parts)
            except StopIteration:
                self._done = True
            except OSError as e:
                from dockyard.cli.context import CLIError

                raise CLIError(f"error checking context: {e}", 1) from None
        n = len(self._buf) if size < 0 else min(size, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read1(self, size: int = -1) -> bytes:
        # What the upload sends next: at most _PIECE, so the daemon starts indexing
        # after a quarter MB rather than after the first MB is made
        return self.read(_PIECE if size < 0 else min(size, _PIECE))

    def close(self) -> None:
        self._parts.close()


def _add_tree(
    writer: _TarWriter, root: str, rel: str, ignore: Matcher, always: set[str]
) -> Iterator[None]:
    directory = os.path.join(root, rel) if rel else root
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        path_rel = f"{rel}/{entry.name}" if rel else entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        excluded = ignore and ignore.excluded(path_rel) and path_rel not in always
        if excluded and not (is_dir and ignore.has_exceptions):
            continue
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISSOCK(st.st_mode):
            continue
        if not excluded:
            yield from writer.add(entry.path, path_rel, st)
        if is_dir:
            yield from _add_tree(writer, root, path_rel, ignore, always)


_BLOCK = 512


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


class _TarWriter:
    """The context as a ustar archive (pax records only for long names or big
    sizes), written by hand: tarfile costs more to import and per file than the
    whole rest of a cached build's client side. As the docker CLI: owners 0:0,
    mtimes in whole seconds, hard links between sent files kept."""

    def __init__(self, out: _ContextStream) -> None:
        self.out = out
        self._links: dict[tuple[int, int], str] = {}

    def add(self, path: str, name: str, st: os.stat_result) -> Iterator[None]:
        """Write one entry, pausing (yielding) after each MB of its data."""
        mode = st.st_mode
        link = ""
        size = 0
        if stat.S_ISDIR(mode):
            kind, name = b"5", name + "/"
        elif stat.S_ISLNK(mode):
            kind, link = b"2", os.readlink(path)
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                kind, link = b"1", self._links[key]
            else:
                kind, size = b"0", st.st_size
                if st.st_nlink > 1:
                    self._links[key] = name
        elif stat.S_ISFIFO(mode):
            kind = b"6"
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = b"3" if stat.S_ISCHR(mode) else b"4"
        else:
            return
        if kind == b"0":
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                self._header(name, mode, size, int(st.st_mtime), kind, link, st)
                yield from self._data(fd, size)
            finally:
                os.close(fd)
        else:
            self._header(name, mode, size, int(st.st_mtime), kind, link, st)
        yield

    def _header(
        self,
        name: str,
        mode: int,
        size: int,
        mtime: int,
        kind: bytes,
        link: str,
        st: os.stat_result,
    ) -> None:
        bname = name.encode("utf-8", "surrogateescape")
        blink = link.encode("utf-8", "surrogateescape")
        pax = {}
        if len(bname) > 100:
            pax[b"path"] = bname
            bname = bname[:100]
        if len(blink) > 100:
            pax[b"linkpath"] = blink
            blink = blink[:100]
        if size >= 8**11:
            pax[b"size"] = str(size).encode()
        if pax:
            body = b"".join(_pax_record(k, v) for k, v in pax.items())
            self.out.write(self._block(b"././@PaxHeader", 0o644, len(body), mtime, b"x", b""))
            self.out.write(body + b"\0" * (-len(body) % _BLOCK))
        dev = (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in (b"3", b"4") else (0, 0)
        size_field = size if size < 8**11 else 0
        self.out.write(self._block(bname, mode & 0o7777, size_field, mtime, kind, blink, dev))

    @staticmethod
    def _block(
        name: bytes,
        mode: int,
        size: int,
        mtime: int,
        kind: bytes,
        link: bytes,
        dev: tuple[int, int] = (0, 0),
    ) -> bytes:
        header = b"".join(
            (
                name.ljust(100, b"\0"),
                _octal(mode, 8),
                _octal(0, 8),  # uid
                _octal(0, 8),  # gid
                _octal(size, 12),
                _octal(max(mtime, 0), 12),
                b" " * 8,  # the checksum, counted as blanks
                kind,
                link.ljust(100, b"\0"),
                b"ustar\x0000",
                b"\0" * 64,  # uname, gname
                _octal(dev[0], 8),
                _octal(dev[1], 8),
                b"\0" * 167,  # prefix, padding
            )
        )
        checksum = b"%06o\0 " % sum(header)
        return header[:148] + checksum + header[156:]

    def _data(self, fd: int, size: int) -> Iterator[None]:
        os.set_blocking(fd, True)
        left = size
        while left:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:  # the file shrank while it was sent: zeros keep the archive whole
                chunk = b"\0" * min(left, 1 << 20)
            self.out.write(chunk)
            left -= len(chunk)
            if left:
                yield
        self.out.write(b"\0" * (-size % _BLOCK))


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


class _NoLock:
    """The display's lock when no ticker thread shares it."""

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


class StepDisplay:
    """The build stream as docker prints it, each step closed with its duration;
    on a terminal, a step that runs silently shows its elapsed time, ticking."""

    def __init__(self, out: IO[str], terminal: bool, quiet: bool = False) -> None:
        self.out = out
        self.terminal = terminal
        self.quiet = quiet
        self._step_start: float | None = None
        self._step_name = ""
        self._at_line_start = True
        self._status_shown = False
        self._last_output = time.monotonic()
        self._lock: Any = _NoLock()
        self._stop: Any = None
        self._ticker: Any = None
        if terminal and not quiet:
            # threading (and what it imports) only for the ticking display
            import threading

            self._lock = threading.Lock()
            self._stop = threading.Event()
            self._ticker = threading.Thread(target=self._tick, name="build-ticker", daemon=True)
            self._ticker.start()

    def _clear_status(self) -> None:
        if self._status_shown:
            self.out.write("\r\x1b[K")
            self._status_shown = False

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                if self._step_start is None or not self._at_line_start:
                    continue
                if time.monotonic() - self._last_output < 1.0:
                    continue
                elapsed = time.monotonic() - self._step_start
                self.out.write(f"\r\x1b[K ... {self._step_name} {elapsed:.1f}s")
                self.out.flush()
                self._status_shown = True

    def _end_step(self) -> None:
        if self._step_start is not None:
            took = time.monotonic() - self._step_start
            if not self._at_line_start:
                self.out.write("\n")
            self.out.write(f" ---> {self._step_name} took {took:.2f}s\n")
            self._at_line_start = True
        self._step_start = None

    def write(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            self._clear_status()
            if text.startswith("Step "):
                self._end_step()
                self._step_start = time.monotonic()
                self._step_name = text.split(" : ", 1)[0]
            elif text.startswith("Successfully built"):
                self._end_step()
            self.out.write(text)
            self.out.flush()
            self._at_line_start = text.endswith("\n")
            self._last_output = time.monotonic()

    def close(self) -> None:
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join(timeout=1)
        with self._lock:
            self._clear_status()
            if self._step_start is not None and not self.quiet:
                self._end_step()
            self.out.flush()
