"""Bytes from the event loop into a worker thread, through a pipe.

The loop side writes without blocking and waits for the pipe to drain
(add_writer), so a download feeds an unpacking thread with no thread hop per
chunk and no more than the pipe's buffer (64 KiB) in flight: the unpacker's
pace throttles the download, and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import os


class PipeFeed:
    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._write_fd, False)
        self._loop = asyncio.get_running_loop()
        self._closed = False

    async def write(self, data: bytes) -> None:
        """Write all of `data`; BrokenPipeError once the reader has closed its end."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._write_fd, view) :]
            except BlockingIOError:
                await self._writable()

    async def _writable(self) -> None:
        ready = self._loop.create_future()
        self._loop.add_writer(self._write_fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            self._loop.remove_writer(self._write_fd)

    def close(self) -> None:
        """End of stream for the reader (idempotent)."""
        if not self._closed:
            self._closed = True
            os.close(self._write_fd)
