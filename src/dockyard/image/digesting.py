"""Reading a layer stream once: hashed, copied to its blob and unpacked together."""

from __future__ import annotations

import hashlib
import os
import queue
import threading

_BUFFER = 1 << 20  # what the digest thread is handed at a time
_BUFFERS = 8  # buffers in flight (bounded memory: 8 MiB)


class LayerDigest:
    """Fed every byte of a layer's uncompressed tar once (TarReader's on_read):
    hashes it into the diff_id and copies it to the blob file, in the pass
    that unpacks it.

    With `background`, hashing and the blob's writes run on a thread of their
    own (both release the GIL), beside the unpacking, which mostly waits on
    creating inodes: they no longer add to its time. The reader's views are
    gathered into a few recycled 1 MiB buffers (its chunks are often far
    smaller: what a socket read gave): one hand-over per MiB, and no new
    memory per chunk, whose first touch costs page faults (a fresh 1 MiB
    bytes per chunk was 15% of a load's CPU). Call `finish` when the stream
    is read (it raises what the thread met) and `stop` before closing the
    blob's fd whatever happened."""

    def __init__(self, sink_fd: int | None, *, background: bool = False) -> None:
        self._sink_fd = sink_fd
        self.sha = hashlib.sha256()
        self.count = 0
        self._error: BaseException | None = None
        self._queue: queue.Queue[tuple[bytearray, int] | None] | None = None
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._buf: bytearray | None = None  # being filled, `_used` bytes so far
        self._used = 0
        self._made = 0  # buffers made so far (as needed, up to _BUFFERS)
        if background:
            self._queue = queue.Queue()
            self._thread = threading.Thread(target=self._run, name="layer-digest", daemon=True)
            self._thread.start()

    def __call__(self, chunk: memoryview) -> None:
        self.count += len(chunk)
        if self._queue is None:
            self._consume(chunk)
            return
        if self._error is not None:
            raise self._error
        # Copied: the view's buffer is refilled once we return.
        while chunk:
            if self._buf is None:
                self._buf, self._used = self._take_buffer(), 0
            used = self._used
            n = min(len(chunk), _BUFFER - used)
            self._buf[used : used + n] = chunk[:n]
            chunk = chunk[n:]
            self._used = used + n
            if self._used == _BUFFER:
                self._hand_over()

    def _take_buffer(self) -> bytearray:
        if self._made < _BUFFERS and self._free.empty():
            self._made += 1
            return bytearray(_BUFFER)
        return self._free.get()  # waits while all are in flight

    def _hand_over(self) -> None:
        if self._buf is not None and self._queue is not None:
            self._queue.put((self._buf, self._used))
            self._buf = None

    def _consume(self, chunk: memoryview | bytes) -> None:
        self.sha.update(chunk)
        if self._sink_fd is not None:
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._sink_fd, view) :]

    def _run(self) -> None:
        assert self._queue is not None
        while (item := self._queue.get()) is not None:
            buf, used = item
            if self._error is None:
                try:
                    with memoryview(buf) as view:
                        self._consume(view[:used])
                except BaseException as e:  # raised in the reading thread
                    self._error = e
            self._free.put(buf)

    def stop(self) -> None:
        """End the thread (after what is queued); nothing is written after this."""
        if self._thread is not None and self._thread.is_alive():
            assert self._queue is not None
            self._hand_over()
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
