"""A layer tar encoded on a thread of its own, fed by the walk that reads the tree.

`docker commit` copies a container's upper dir as a layer while it archives
it (image/layer_copy): the walk's reads, writes and creates wait on the
kernel, the tar's encoding (tarfile: a header is tens of microseconds of
Python) and its hashing do not; on a thread of their own they overlap, as
the tar writer and the unpacker of the old pipe did. `TarFeed` stands in for
the `tarfile.TarFile` the walk writes to; the thread writes what tarfile's
"w|" stream would, byte for byte (the diffID does not change; headers by
image/tar_header), without tarfile's per-member copies, and passes file data
on in the chunks the walk read (hashing them releases the GIL). Members go in
batches through a bounded queue, so memory stays flat: a hand-over per
member would cost more than it saves.
"""

from __future__ import annotations

import queue
import tarfile
import threading
from collections.abc import Iterator
from typing import BinaryIO

from dockyard.image.tar_header import header

_CHUNK = 1 << 20
_BATCH_BYTES = 1 << 20
_BATCH_ITEMS = 256
_IN_FLIGHT = 8  # batches queued (about 8 MiB of data at most)
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE  # a stream tar ends on a record (tarfile: 20 blocks)

Item = tarfile.TarInfo | bytes


class _Ended(Exception):
    """The walk stopped in the middle of a member (it failed)."""


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
        write = out.write
        offset = 0
        try:
            for item in items:
                if not isinstance(item, tarfile.TarInfo):
                    raise RuntimeError("layer tar: data where a header was expected")
                block = header(item)
                write(block)
                offset += len(block)
                size = item.size if item.isreg() else 0
                left = size
                while left:
                    data = next(items, None)
                    if not isinstance(data, bytes):
                        raise _Ended
                    if len(data) > left:
                        raise RuntimeError("layer tar: more data than the member's size")
                    write(data)
                    left -= len(data)
                padding = -size % _BLOCK
                if padding:
                    write(bytes(padding))
                offset += size + padding
            # The end of the archive: two zero blocks, then up to a whole record.
            end = 2 * _BLOCK
            write(bytes(end + (-(offset + end) % _RECORD)))
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
