"""Reading a layer stream once: hashed, copied to its blob and unpacked together."""

from __future__ import annotations

import hashlib
import os
import queue
import threading

_IN_FLIGHT = 8  # chunks (of at most 1 MiB) queued for the digest thread


class LayerDigest:
    """Fed every byte of a layer's uncompressed tar once (TarReader's on_read):
    hashes it into the diff_id and copies it to the blob file, in the pass
    that unpacks it.

    With `background`, hashing and the blob's writes run on a thread of their
    own (both release the GIL), beside the unpacking, which mostly waits on
    creating inodes: they no longer add to its time. Call `finish` when the
    stream is read (it raises what the thread met) and `stop` before closing
    the blob's fd whatever happened."""

    def __init__(self, sink_fd: int | None, *, background: bool = False) -> None:
        self._sink_fd = sink_fd
        self.sha = hashlib.sha256()
        self.count = 0
        self._error: BaseException | None = None
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._queue = queue.Queue(_IN_FLIGHT)
            self._thread = threading.Thread(target=self._run, name="layer-digest", daemon=True)
            self._thread.start()

    def __call__(self, chunk: memoryview) -> None:
        self.count += len(chunk)
        if self._queue is None:
            self._consume(chunk)
            return
        if self._error is not None:
            raise self._error
        self._queue.put(bytes(chunk))  # the view's buffer is refilled once we return

    def _consume(self, chunk: memoryview | bytes) -> None:
        self.sha.update(chunk)
        if self._sink_fd is not None:
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._sink_fd, view) :]

    def _run(self) -> None:
        assert self._queue is not None
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._consume(chunk)
                except BaseException as e:  # raised in the reading thread
                    self._error = e

    def stop(self) -> None:
        """End the thread (after what is queued); nothing is written after this."""
        if self._thread is not None and self._thread.is_alive():
            assert self._queue is not None
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> None:
        """Everything fed is hashed and written: `sha` is the diff_id's."""
        self.stop()
        if self._error is not None:
            raise self._error


def is_compressed(fd: int) -> bool:
    """Whether a layer file is gzip, bzip2, xz or zstd (by magic, as dockerd detects)."""
    head = os.pread(fd, 6, 0)
    return head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"))
