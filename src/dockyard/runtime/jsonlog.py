"""The json-file log driver, byte-compatible with dockerd's.

One JSON object per line: {"log":"hello\n","stream":"stdout","time":"..."}.
Output is split on newlines as dockerd's log copier does: each complete line
(newline included) is one entry; a line longer than 16 KiB is cut into
partial entries without a newline; what is left at exit is flushed as is.
The string escaping follows moby's jsonlog (ffjson): \\n, \\r, \\", \\\\ stay
short, other control bytes and < > & become \\u00XX, invalid UTF-8 becomes
\\ufffd, U+2028/U+2029 are escaped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time

from dockyard.runtime.rfc3339 import format_rfc3339nano

MAX_LINE = 16 * 1024  # dockerd's bufio buffer: longer lines become partial messages

_ESCAPES: dict[int, str] = {c: f"\\u{c:04x}" for c in range(0x20)}
_ESCAPES.update(
    {
        ord("\n"): "\\n",
        ord("\r"): "\\r",
        ord('"'): '\\"',
        ord("\\"): "\\\\",
        ord("<"): "\\u003c",
        ord(">"): "\\u003e",
        ord("&"): "\\u0026",
        0x2028: "\\u2028",
        0x2029: "\\u2029",
    }
)
# Bytes that are not valid UTF-8 decode (surrogateescape) to U+DC80..U+DCFF.
_ESCAPES.update({c: "\\ufffd" for c in range(0xDC80, 0xDD00)})


def escape_log(data: bytes) -> bytes:
    return data.decode("utf-8", "surrogateescape").translate(_ESCAPES).encode()


def encode_entry(data: bytes, stream: str, epoch_ns: int) -> bytes:
    return b'{"log":"%s","stream":"%s","time":"%s"}\n' % (
        escape_log(data),
        stream.encode(),
        format_rfc3339nano(epoch_ns).encode(),
    )


class LineSplitter:
    """Cuts one stream's output into log entries the way dockerd does."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data
        entries: list[bytes] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start, start + MAX_LINE)
            if nl >= 0:
                entries.append(buf[start : nl + 1])
                start = nl + 1
            elif len(buf) - start >= MAX_LINE:
                entries.append(buf[start : start + MAX_LINE])
                start += MAX_LINE
            else:
                break
        self._buf = buf[start:]
        return entries

    def flush(self) -> list[bytes]:
        rest, self._buf = self._buf, b""
        return [rest] if rest else []


def rotated_name(path: str, n: int) -> str:
    """The n-th older file of a rotated log: <path>.1 is the newest, as dockerd names them."""
    return f"{path}.{n}"


class JsonFileLog:
    """Appends entries to a json-file log; one write(2) per chunk of output.

    With `max_size` (bytes, 0: no limit) it rotates as dockerd's json-file driver
    with max-size/max-file: once the file has reached max_size, <path>.1 ...
    <path>.<max_files-1> move up one and the file starts anew; with one file it is
    emptied instead."""

    def __init__(self, path: str, max_size: int = 0, max_files: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size
        self._splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}
        self._torn = False  # the file ends in a partly written entry (a full disk)
        self.dropped = 0  # entries lost to write errors

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, stream: str, data: bytes) -> None:
        self._emit(stream, self._splitters[stream].feed(data))

    def close(self) -> None:
        try:
            for stream, splitter in self._splitters.items():
                self._emit(stream, splitter.flush())
        finally:
            os.close(self.fd)

    def _emit(self, stream: str, entries: list[bytes]) -> None:
        """On a full disk the entries are lost (as with dockerd, whose json-file driver
        drops a message it cannot write) and OSError is raised."""
        if not entries:
            return
        now = time.time_ns()
        encoded = [encode_entry(e, stream, now) for e in entries]
        if not self.max_size:
            self._write(encoded)
            return
        # A file grows past max_size by one entry at most, as with dockerd.
        batch: list[bytes] = []
        pending = 0
        for i, line in enumerate(encoded):
            if self.size + pending >= self.max_size:
                if batch:
                    self._write(batch)
                    batch, pending = [], 0
                try:
                    self._rotate()
                except OSError:
                    self.dropped += len(encoded) - i
                    raise
            batch.append(line)
            pending += len(line)
        self._write(batch)

    def _write(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        if self._torn:
            # End the fragment a short write left, so readers skip it as one bad line
            # instead of losing the next good one with it.
            data = b"\n" + data
        try:
            n = os.write(self.fd, data)
        except OSError:
            self.dropped += len(lines)
            raise
        self.size += n
        if n < len(data):
            self._torn = data[n - 1 : n] != b"\n" if n else self._torn
            self.dropped += data.count(b"\n", n) or 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "short write to the log")
        self._torn = False

    def _rotate(self) -> None:
        if self.max_files < 2:
            os.ftruncate(self.fd, 0)  # O_APPEND: the next write lands at the new end
        else:
            for n in range(self.max_files - 1, 1, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(rotated_name(self.path, n - 1), rotated_name(self.path, n))
            os.rename(self.path, rotated_name(self.path, 1))
            os.close(self.fd)
            self.fd = self._open()
        self.size = 0
        self._torn = False
