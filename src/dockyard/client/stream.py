"""Docker's multiplexed stream framing: [stream, 0, 0, 0, size uint32 BE] + payload.

stream 0 is stdin (written by some daemons for tty echo), 1 stdout, 2 stderr,
3 the "systemerr" stream a daemon uses to report an error mid-stream.
"""

from __future__ import annotations

import _struct as struct  # the C module: `struct` is a wrapper around it
import os

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

HEADER_SIZE = 8
STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3


def encode_frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


_HEADER = struct.Struct(">BxxxI")


class FrameDecoder:
    """Incremental decoder: feed arbitrary byte chunks, get (stream, payload) frames.

    Payloads are returned as they arrive (a large frame may come back in
    several pieces) so output is never delayed until a whole frame is in.
    """

    def __init__(self) -> None:
        self._rest = b""  # a header cut by the end of a chunk
        self._stream = STDOUT
        self._remaining = 0

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        for stream, parts in self.runs(data):
            yield from ((stream, p) for p in parts)

    def runs(self, data: bytes) -> list[tuple[int, list[bytes]]]:
        """The payloads of a chunk, grouped in runs of one stream (in order): a reader
        writes each run at once instead of one write per frame. The chunk is walked by
        offset, never shifted: a 64 KiB chunk of 1.6M-line logs holds ~1000 frames."""
        if self._rest:
            data, self._rest = self._rest + data, b""
        out: list[tuple[int, list[bytes]]] = []
        stream, remaining = self._stream, self._remaining
        parts: list[bytes] = []
        pos, end = 0, len(data)
        unpack = _HEADER.unpack_from
        while pos < end:
            if remaining:  # the rest of a frame begun in an earlier chunk
                take = remaining if remaining < end - pos else end - pos
                parts.append(data[pos : pos + take])
                pos += take
                remaining -= take
                continue
            if end - pos < HEADER_SIZE:
                self._rest = data[pos:]
                break
            new, size = unpack(data, pos)
            pos += HEADER_SIZE
            if new != stream:
                if parts:
                    out.append((stream, parts))
                    parts = []
                stream = new
            stop = pos + size
            if stop > end:
                remaining, stop = stop - end, end
            parts.append(data[pos:stop])
            pos = stop
        if parts:
            out.append((stream, parts))
        self._stream, self._remaining = stream, remaining
        return out

    @property
    def pending(self) -> int:
        """Bytes still owed: a truncated header or the rest of a frame."""
        return len(self._rest) + self._remaining


def demux(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    decoder = FrameDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)


def write_all(fd: int, data: bytes) -> None:
    """os.write until everything is out (pipes may take partial writes)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        view = view[n:]


class OutputSink:
    """Where demuxed bytes go: raw fds 1 and 2 by default, unbuffered and binary-safe."""

    def __init__(
        self,
        stdout: Callable[[bytes], None] | None = None,
        stderr: Callable[[bytes], None] | None = None,
    ) -> None:
        self.stdout = stdout or (lambda b: write_all(1, b))
        self.stderr = stderr or (lambda b: write_all(2, b))
        self.system_error = bytearray()

    def write(self, stream: int, data: bytes) -> None:
        if stream == STDERR:
            self.stderr(data)
        elif stream == SYSTEMERR:
            self.system_error += data
        else:
            self.stdout(data)


def copy_stream(chunks: Iterable[bytes], sink: OutputSink, tty: bool) -> None:
    """Copy a daemon stream to the sink: raw when the container has a TTY, else demuxed."""
    if tty:
        for chunk in chunks:
            sink.write(STDOUT, chunk)
        return
    # Consecutive frames of one stream in a chunk go out in one write: a 100 MB log
    # is a few thousand writes, not one per line. The order of the streams is kept.
    decoder = FrameDecoder()
    for chunk in chunks:
        for stream, parts in decoder.runs(chunk):
            sink.write(stream, parts[0] if len(parts) == 1 else b"".join(parts))
