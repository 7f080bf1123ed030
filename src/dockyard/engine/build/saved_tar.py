"""The build context's tar as it came, kept for the steps that read it later
(the Dockerfile, a COPY that misses the cache and unpacks it).

A small one stays in memory, as the pieces it arrived in: writing a few MB to a
file and unlinking it after cost more CPU than a cached build's own steps, on
every build. Past MEMORY_LIMIT it is written to a file beside the context,
what came before included, so a context of any size costs bounded memory.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from typing import BinaryIO

MEMORY_LIMIT = 16 << 20


class SavedTar:
    def __init__(self, path: str, memory_limit: int = MEMORY_LIMIT) -> None:
        self.path = path  # where it goes once it is too big for memory
        self._limit = memory_limit
        self._parts: list[bytes] = []
        self._starts: list[int] = []  # offset of each part
        self._size = 0
        self._file: BinaryIO | None = None
        self._spilled = False

    @property
    def in_memory(self) -> bool:
        return not self._spilled

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._spilled and self._size + len(data) > self._limit:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
            for part in self._parts:
                self._file.write(part)
            self._parts, self._starts, self._spilled = [], [], True
        if self._spilled:
            assert self._file is not None
            self._file.write(data)
        else:
            self._starts.append(self._size)
            self._parts.append(bytes(data))
        self._size += len(data)

    def close(self) -> None:
        """The writing is over (the file, if any, flushed and closed)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to n bytes from `offset`."""
        if self._spilled:
            with open(self.path, "rb") as f:
                f.seek(offset)
                return f.read(n)
        out: list[bytes] = []
        i = bisect.bisect_right(self._starts, offset) - 1
        while n > 0 and 0 <= i < len(self._parts):
            start = offset - self._starts[i]
            part = self._parts[i][start : start + n]
            out.append(part)
            offset += len(part)
            n -= len(part)
            i += 1
        return b"".join(out)

    def open(self) -> BinaryIO | _PartsReader:
        """A reader of the whole tar from its start."""
        if self._spilled:
            return open(self.path, "rb")
        return _PartsReader(list(self._parts))

    def discard(self) -> None:
        self.close()
        self._parts, self._starts = [], []
        if self._spilled:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


class _PartsReader:
    """read(size) over the pieces kept in memory."""

    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts
        self._i = 0
        self._pos = 0

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            rest = [part for part in self._parts[self._i :]]
            if rest:
                rest[0] = rest[0][self._pos :]
            self._i, self._pos = len(self._parts), 0
            return b"".join(rest)
        out: list[bytes] = []
        while size > 0 and self._i < len(self._parts):
            part = self._parts[self._i]
            piece = part[self._pos : self._pos + size]
            out.append(piece)
            size -= len(piece)
            self._pos += len(piece)
            if self._pos >= len(part):
                self._i, self._pos = self._i + 1, 0
        return b"".join(out)

    def close(self) -> None:
        self._parts = []

    def __enter__(self) -> _PartsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
