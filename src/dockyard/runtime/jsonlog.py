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


def encode_entry(data: bytes, stream: str, epoch_ns: int, attrs: bytes = b"") -> bytes:
    """`attrs`: "" or `,"attrs":{...}` (encode_attrs), where dockerd puts it."""
    return b'{"log":"%s","stream":"%s"%s,"time":"%s"}\n' % (
        escape_log(data),
        stream.encode(),
        attrs,
        format_rfc3339nano(epoch_ns).encode(),
    )


def encode_attrs(attrs: dict[str, str]) -> bytes:
    """The `,"attrs":{...}` fragment of every entry: keys sorted, escaped as Go's
    json.Marshal does (dockerd marshals the map once, at the logger's start)."""
    if not attrs:
        return b""
    fields = ",".join(
        f'"{escape_log(k.encode()).decode()}":"{escape_log(v.encode()).decode()}"'
        for k, v in sorted(attrs.items())
    )
    return b',"attrs":{%s}' % fields.encode()


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


class JsonFileLog:
    """Appends entries to a json-file log; one write(2) per chunk of output.

    With `max_size`, the file is rotated as dockerd's json-file does: when it
    reaches the size, `log` becomes `log.1` (`log.1.gz` with `compress`), older
    ones shift up and the one past `max_file - 1` is dropped; with max_file 1 the
    file is truncated instead. A log file deleted or renamed under us is reopened
    at the next rotation; writing never stops the container.

    On a full disk entries are lost (as with dockerd, whose json-file driver drops
    a message it cannot write): `dropped` counts them and write() raises OSError.
    """

    def __init__(
        self,
        path: str,
        max_size: int = 0,
        max_file: int = 1,
        compress: bool = False,
        attrs: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self.attrs = encode_attrs(attrs or {})
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.compress = compress
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size
        self._splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}
        self._torn = False  # the file ends in a partly written entry (a full disk)
        self.dropped = 0  # entries lost to write errors

    def _open(self) -> int:
        # readable too: a compressed rotation reads the file back through this fd
        return os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, stream: str, data: bytes) -> None:
        self._emit(stream, self._splitters[stream].feed(data))

    def close(self) -> None:
        try:
            for stream, splitter in self._splitters.items():
                self._emit(stream, splitter.flush())
        finally:
            os.close(self.fd)

    def _emit(self, stream: str, entries: list[bytes]) -> None:
        if not entries:
            return
        now = time.time_ns()
        encoded = [encode_entry(e, stream, now, self.attrs) for e in entries]
        if not self.max_size:
            self._write(encoded)
            return
        # as dockerd: an entry that would take the file past max-size goes to a new one
        batch: list[bytes] = []
        pending = 0
        for i, line in enumerate(encoded):
            if self.size + pending + len(line) > self.max_size and self.size + pending > 0:
                if batch:
                    try:
                        self._write(batch)
                    except OSError:
                        self.dropped += len(encoded) - i  # the rest of the chunk too
                        raise
                    batch, pending = [], 0
                self._rotate()
            batch.append(line)
            pending += len(line)
        if batch:
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
        if self.max_file == 1:
            os.ftruncate(self.fd, 0)
            self.size = 0
            self._torn = False
            return
        ext = ".gz" if self.compress else ""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{self.path}.{self.max_file - 1}{ext}")
        for i in range(self.max_file - 2, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rename(f"{self.path}.{i}{ext}", f"{self.path}.{i + 1}{ext}")
        try:
            if self.compress:
                _gzip_to(self.fd, f"{self.path}.1.gz")
                os.unlink(self.path)
            else:
                os.rename(self.path, f"{self.path}.1")
        except OSError:
            pass  # deleted under us (or a full disk): start a fresh file anyway
        os.close(self.fd)
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size
        self._torn = False


def _gzip_to(fd: int, dest: str) -> None:
    """The content of `fd` (from its start) gzipped into `dest`, atomically."""
    import gzip

    tmp = dest + ".tmp"
    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as gz:
            offset = 0
            while chunk := os.pread(fd, 1 << 20, offset):
                gz.write(chunk)
                offset += len(chunk)
        os.rename(tmp, dest)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
