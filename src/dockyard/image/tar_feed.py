"""A layer tar encoded on a thread of its own, fed by the walk that reads the tree.

`docker commit` copies a container's upper dir as a layer while it archives
it (image/layer_copy): the walk's reads, writes and creates wait on the
kernel, the tar's encoding (tarfile: a header is tens of microseconds of
Python) and its hashing do not; on a thread of their own they overlap, as
the tar writer and the unpacker of the old pipe did. `TarFeed` stands in for
the `tarfile.TarFile` the walk writes to; the real one, on the thread, reads
the members and their data from a bounded queue, so the bytes are exactly
tarfile's (the diffID does not change) and memory stays flat.
"""

from __future__ import annotations

import queue
import tarfile
import threading
from typing import BinaryIO

_CHUNK = 1 << 20
_IN_FLIGHT = 16  # queued headers and chunks (at most 16 MiB of data)


class _Ended(Exception):
    """The walk stopped in the middle of a member (it failed)."""


class _QueuedData:
    """A member's data, as tarfile.addfile reads it: exactly `size` bytes."""

    def __init__(self, items: queue.Queue[tarfile.TarInfo | bytes | None]) -> None:
        self._items = items
        self._rest = memoryview(b"")
        self.ended = False

    def read(self, size: int) -> bytes:
        parts = []
        while size:
            if not self._rest:
                item = self._items.get()
                if not isinstance(item, bytes):
                    self.ended = item is None
                    raise _Ended
                self._rest = memoryview(item)
            part = self._rest[:size]
            self._rest = self._rest[len(part) :]
            size -= len(part)
            parts.append(part)
        return b"".join(parts)


class TarFeed:
    """What the walk calls `addfile` on; the tar is written to `out` by a thread.
    `close` when the walk is done (raises what the thread met), `abort` if it failed."""

    def __init__(self, out: BinaryIO) -> None:
        self._items: queue.Queue[tarfile.TarInfo | bytes | None] = queue.Queue(_IN_FLIGHT)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(out,), name="layer-tar")
        self._thread.daemon = True
        self._thread.start()

    def addfile(self, info: tarfile.TarInfo, fileobj: object = None) -> None:
        if self._error is not None:
            raise self._error
        self._items.put(info)
        if fileobj is None or not info.size:
            return
        left = info.size
        while left:
            data = fileobj.read(min(left, _CHUNK))  # type: ignore[attr-defined]
            if not data:
                raise OSError("unexpected end of data")  # as tarfile's copy
            left -= len(data)
            self._items.put(data)

    def _run(self, out: BinaryIO) -> None:
        data = _QueuedData(self._items)
        ended = False  # the walk's None was taken
        try:
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                while (item := self._items.get()) is not None:
                    if not isinstance(item, tarfile.TarInfo):
                        raise RuntimeError("layer tar: data where a header was expected")
                    tar.addfile(item, data if item.size and item.isreg() else None)
                ended = True
        except _Ended:
            ended = data.ended
            if not ended:
                self._error = RuntimeError("layer tar: a header where data was expected")
        except BaseException as e:  # raised in the walking thread
            self._error = e
        while not ended:  # until the walk stops
            ended = self._items.get() is None

    def close(self) -> None:
        self._items.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """The walk failed: end the thread, whatever it was doing."""
        self._items.put(None)
        self._thread.join()
