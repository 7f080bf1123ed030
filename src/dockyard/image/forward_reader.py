"""A forward-only stream that tarfile's random-access reader can use.

tarfile's stream mode ("r|") reads its source 10 KiB at a time and joins the
pieces for every read, which made unpacking a layer several times slower than
`tar -x`. Its random-access mode ("r:") reads a member's data in the sizes
asked for (1 MiB here) and only ever seeks forward when members are read in
order, which is all an unpacker does; this wrapper gives it tell() and forward
seeks over a pipe or a decompressor, reading the source in large chunks.
A backward seek is refused (io.UnsupportedOperation), never faked.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.image.tarsafe import Readable


class ForwardReader(io.RawIOBase):
    _CHUNK = 1 << 20

    def __init__(self, source: Readable) -> None:
        super().__init__()
        self._source = source
        self._buf = b""
        self._pos = 0  # in _buf
        self._base = 0  # stream offset of _buf[0]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._base + self._pos

    def _fill(self) -> bool:
        chunk = self._source.read(self._CHUNK)
        if not chunk:
            return False
        self._base += len(self._buf)
        self._buf, self._pos = chunk, 0
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.tell()
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("seek from the end of a stream")
        skip = offset - self.tell()
        if skip < 0:
            raise io.UnsupportedOperation("backward seek in a forward-only stream")
        while skip > 0:
            left = len(self._buf) - self._pos
            if left == 0 and not self._fill():
                break  # past the end: the next read returns b"" (a truncated archive)
            step = min(skip, len(self._buf) - self._pos)
            self._pos += step
            skip -= step
        return self.tell()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buf[self._pos :]]
            self._pos = len(self._buf)
            while self._fill():
                parts.append(self._buf)
                self._pos = len(self._buf)
            return b"".join(parts)
        end = self._pos + size
        if end <= len(self._buf):  # the common case: one slice
            data = self._buf[self._pos : end]
            self._pos = end
            return data
        parts = []
        while size > 0:
            if self._pos >= len(self._buf) and not self._fill():
                break
            piece = self._buf[self._pos : self._pos + size]
            self._pos += len(piece)
            size -= len(piece)
            parts.append(piece)
        return b"".join(parts)

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)
