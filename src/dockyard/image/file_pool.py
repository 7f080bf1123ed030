"""Small files of a layer created and written on worker threads.

Creating an inode costs the kernel far more than the Python that parses its
tar header (a rootfs layer is ten thousand files of a few kB), and `tar -x`
does it on one core. The unpacker keeps every namespace decision in order on
its own thread (directories, links, replacements, whiteouts) and hands plain
new files, with their data copied out of the read buffer, to a few workers
in batches; open(O_EXCL), write, owner, mode and times release the GIL.

Ordering rules the unpacker keeps (tarsafe._LayerUnpacker):
- a name still in flight here is waited for (`drain`) before anything else
  is done with that name, and before any removal, hard link, whiteout, or
  closing of a directory fd that a job may still use;
- only a name that does not exist yet goes to a worker (anything to replace
  is replaced by the unpacker, in order), so a worker only ever creates.
Memory is bounded: at most `_MAX_BATCHES` batches of `_BATCH_BYTES` in flight.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

# What describes a file to its writer: a TarEntry (unpacking), a stat (commit's copy).
Header = TypeVar("Header")

SMALL_FILE = 1 << 20  # larger files are written by the unpacker itself, streamed
_BATCH_FILES = 64
_BATCH_BYTES = 4 << 20
_MAX_BATCHES = 6
_MAX_PENDING = 8192  # names remembered between drains


class FilePool(Generic[Header]):
    def __init__(
        self, workers: int, write_one: Callable[[int, bytes, Header, bytes], None]
    ) -> None:
        self._write_one = write_one
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="layer-files")
        # (parent dir fd, name, header, data)
        self._batch: list[tuple[int, bytes, Header, bytes]] = []
        self._batch_bytes = 0
        self._inflight: deque[Future[None]] = deque()
        # (parent directory inode, name) of every job not known to be done
        self._pending: set[tuple[int, bytes]] = set()

    def is_pending(self, key: tuple[int, bytes]) -> bool:
        return key in self._pending

    def add(
        self, key: tuple[int, bytes], parent_fd: int, name: bytes, entry: Header, data: bytes
    ) -> None:
        if key in self._pending or len(self._pending) >= _MAX_PENDING:
            self.drain()  # a second file of that name must land after the first
        self._pending.add(key)
        self._batch.append((parent_fd, name, entry, data))
        self._batch_bytes += len(data)
        if len(self._batch) >= _BATCH_FILES or self._batch_bytes >= _BATCH_BYTES:
            self._submit()

    def _submit(self) -> None:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if not batch:
            return
        self._inflight.append(self._executor.submit(self._run, batch))
        # Bounded memory, and a worker's error surfaces soon.
        while self._inflight and (len(self._inflight) > _MAX_BATCHES or self._inflight[0].done()):
            self._inflight.popleft().result()

    def _run(self, batch: list[tuple[int, bytes, Header, bytes]]) -> None:
        write = self._write_one
        for parent_fd, name, entry, data in batch:
            write(parent_fd, name, entry, data)

    def drain(self) -> None:
        """Every job done (its error raised, the first one), nothing pending."""
        self._submit()
        try:
            while self._inflight:
                self._inflight.popleft().result()
        finally:
            self._pending.clear()

    def close(self) -> None:
        """Wait for every worker (nothing may write after the unpack returns), errors
        ignored: called on the way out, after `drain` or after another error."""
        self._batch = []
        for future in self._inflight:
            future.cancel()
        for future in self._inflight:
            with contextlib.suppress(BaseException):
                future.result()
        self._inflight.clear()
        self._executor.shutdown(wait=True)
