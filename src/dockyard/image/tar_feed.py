"""A layer tar encoded on a thread of its own, fed by the walk that reads the tree.

`docker commit` copies a container's upper dir as a layer while it archives
it (image/layer_copy): the walk's reads, writes and creates wait on the
kernel, the tar's encoding (tarfile: a header is tens of microseconds of
Python) and its hashing do not; on a thread of their own they overlap, as
the tar writer and the unpacker of the old pipe did. `TarFeed` stands in for
the `tarfile.TarFile` the walk writes to; the real one, on the thread, reads
the members and their data from a bounded queue, so the bytes are exactly
tarfile's (the diffID does not change) and memory stays flat. Members go in
batches: a hand-over per member would cost more than it saves.
"""

from __future__ import annotations

import queue
import tarfile
import threading
from collections.abc import Iterator
from typing import BinaryIO

_CHUNK = 1 << 20
_BATCH_BYTES = 1 << 20
_BATCH_ITEMS = 256
_IN_FLIGHT = 8  # batches queued (about 8 MiB of data at most)

Item = tarfile.TarInfo | bytes


class _Ended(Exception):
    """The walk stopped in the middle of a member (it failed)."""


class _QueuedData:
    """A member's data, as tarfile.addfile reads it: exactly `size` bytes."""

    def __init__(self, items: Iterator[Item]) -> None:
        self._items = items
        self._rest = memoryview(b"")

    def read(self, size: int) -> bytes:
        parts = []
        while size:
            if not self._rest:
                item = next(self._items, None)
                if not isinstance(item, bytes):
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
        self._batches: queue.Queue[list[Item] | None] = queue.Queue(_IN_FLIGHT)
        self._batch: list[Item] = []
        self._batch_bytes = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(out,), name="layer-tar")
        self._thread.daemon = True
        self._thread.start()

    def addfile(self, info: tarfile.TarInfo, fileobj: object = None) -> None:
        if self._error is not None:
            raise self._error
        self._add(info)
        if fileobj is None or not info.size:
            return
        left = info.size
        while left:
            data = fileobj.read(min(left, _CHUNK))  # type: ignore[attr-defined]
            if not data:
                raise OSError("unexpected end of data")  # as tarfile's copy
            left -= len(data)
            self._batch_bytes += len(data)
            self._add(data)

    def _add(self, item: Item) -> None:
        self._batch.append(item)
        if len(self._batch) >= _BATCH_ITEMS or self._batch_bytes >= _BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._batches.put(self._batch)
            self._batch, self._batch_bytes = [], 0

    def _items(self) -> Iterator[Item]:
        while (batch := self._batches.get()) is not None:
            yield from batch

    def _run(self, out: BinaryIO) -> None:
        items = self._items()
        data = _QueuedData(items)
        try:
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for item in items:
                    if not isinstance(item, tarfile.TarInfo):
                        raise RuntimeError("layer tar: data where a header was expected")
                    tar.addfile(item, data if item.size and item.isreg() else None)
        except _Ended:
            pass  # the walk failed midway: its error is the one to report
        except BaseException as e:  # raised in the walking thread
            self._error = e
        for _ in items:  # until the walk stops
            pass

    def close(self) -> None:
        self._flush()
        self._batches.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """The walk failed: end the thread, whatever it was doing."""
        self._batch = []
        self._batches.put(None)
        self._thread.join()
