"""Writing an unpacking layer to disk while it is still being unpacked.

A layer is synced before it appears (store.make_durable: one syncfs); the
kernel does not write its dirty pages back before then on its own (the
background threshold is a tenth of memory), so that sync waited for every
byte at the end, after the unpack. Started every few tens of MiB on a
thread of its own, writeback runs beside the unpacking, and the final sync
finds little left to write.

Errors are not lost: a writeback error is reported to every later syncfs of
the file system, the store's included.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

from dockyard.errors import KernelError

if TYPE_CHECKING:
    from dockyard.kernel.interface import Kernel

EVERY = 32 << 20  # bytes written between two writebacks


class EarlyWriteback:
    """`wrote(n)` as data goes to the file system in directory `fd`; `close()` at
    the end (waits for the writeback in flight: no thread outlives the unpack)."""

    def __init__(self, kernel: Kernel, fd: int, every: int = EVERY) -> None:
        self._kernel = kernel
        self._fd = os.dup(fd)
        self._every = every
        self._since = 0
        self._thread: threading.Thread | None = None
        self.started = 0  # writebacks started (for tests and benches)

    def wrote(self, n: int) -> None:
        self._since += n
        if self._since < self._every:
            return
        if self._thread is not None and self._thread.is_alive():
            return  # one at a time: the next one starts when it is done
        self._since = 0
        self._thread = threading.Thread(target=self._sync, name="layer-writeback", daemon=True)
        self._thread.start()
        self.started += 1

    def _sync(self) -> None:
        with contextlib.suppress(KernelError):  # reported again by the store's syncfs
            self._kernel.syncfs(self._fd)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
