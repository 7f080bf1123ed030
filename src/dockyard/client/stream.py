"""Docker's multiplexed stream framing: [stream, 0, 0, 0, size uint32 BE] + payload.

stream 0 is stdin (written by some daemons for tty echo), 1 stdout, 2 stderr,
3 the "systemerr" stream a daemon uses to report an error mid-stream.
"""

from __future__ import annotations

import os
import struct

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

HEADER_SIZE = 8
STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3


def encode_frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


class FrameDecoder:
    """Incremental decoder: feed arbitrary byte chunks, get (stream, payload) frames.

    Payloads are returned as they arrive (a large frame may come back in
    several pieces) so output is never delayed until a whole frame is in.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._stream = STDOUT
        self._remaining = 0

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self._buf += data
        while self._buf:
            if self._remaining == 0:
                if len(self._buf) < HEADER_SIZE:
                    return
                self._stream, self._remaining = struct.unpack_from(">BxxxI", self._buf)
                del self._buf[:HEADER_SIZE]
                continue
            take = min(self._remaining, len(self._buf))
            chunk = bytes(self._buf[:take])
            del self._buf[:take]
            self._remaining -= take
            yield self._stream, chunk

    @property
    def pending(self) -> int:
        """Bytes still owed: a truncated header or the rest of a frame."""
        return len(self._buf) + self._remaining


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
    # is a few hundred writes, not one per line. The order of the streams is kept.
    decoder = FrameDecoder()
    for chunk in chunks:
        current, parts = 0, []
        for stream, payload in decoder.feed(chunk):
            if stream != current and parts:
                sink.write(current, b"".join(parts))
                parts = []
            current = stream
            parts.append(payload)
        if parts:
            sink.write(current, b"".join(parts))
