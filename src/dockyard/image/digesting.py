"""Reading a layer stream once: hashed, copied to its blob and unpacked together."""

from __future__ import annotations

import hashlib
import os


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
