"""Reading a layer stream once: hashed, copied to its blob and unpacked together."""

from __future__ import annotations

import hashlib
import os

from dockyard.image.tarsafe import Readable


class DigestingReader:
    """Passes the uncompressed tar through to the unpacker while hashing it and
    copying it to the blob file, so the stream is read exactly once.

    Reads the source in large chunks (tarfile asks for 10 KiB at a time):
    one hash update and one write per MiB instead of per record.
    """

    _CHUNK = 1 << 20

    def __init__(self, source: Readable, sink_fd: int | None) -> None:
        self._source = source
        self._sink_fd = sink_fd
        self._buf = b""
        self._pos = 0
        self.sha = hashlib.sha256()
        self.count = 0

    def _fill(self) -> bool:
        chunk = self._source.read(self._CHUNK)
        if not chunk:
            return False
        self.sha.update(chunk)
        self.count += len(chunk)
        view = memoryview(chunk) if self._sink_fd is not None else memoryview(b"")
        while view:
            n = os.write(self._sink_fd, view)  # type: ignore[arg-type]
            view = view[n:]
        self._buf, self._pos = chunk, 0
        return True

    def read(self, size: int = -1) -> bytes:
        if self._pos >= len(self._buf) and not self._fill():
            return b""
        if size is None or size < 0:
            parts = [self._buf[self._pos :]]
            self._pos = len(self._buf)
            while self._fill():
                parts.append(self._buf)
                self._pos = len(self._buf)
            return b"".join(parts)
        end = min(len(self._buf), self._pos + size)
        data = self._buf[self._pos : end]
        self._pos = end
        return data

    def drain(self) -> None:
        # Bytes after the end-of-archive marker (tar record padding) are part
        # of the diff_id too.
        self._pos = len(self._buf)
        while self._fill():
            self._pos = len(self._buf)


class LayerDigest:
    """Fed every byte of a layer's uncompressed tar once (TarReader's on_read):
    hashes it into the diff_id and copies it to the blob file, in the pass
    that unpacks it."""

    def __init__(self, sink_fd: int | None) -> None:
        self._sink_fd = sink_fd
        self.sha = hashlib.sha256()
        self.count = 0

    def __call__(self, chunk: memoryview) -> None:
        self.sha.update(chunk)
        self.count += len(chunk)
        if self._sink_fd is not None:
            while chunk:
                chunk = chunk[os.write(self._sink_fd, chunk) :]


def is_compressed(fd: int) -> bool:
    """Whether a layer file is gzip, bzip2, xz or zstd (by magic, as dockerd detects)."""
    head = os.pread(fd, 6, 0)
    return head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"))
