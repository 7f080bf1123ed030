"""Gzip of a stored layer tar for a push, hashed as it is made.

ISA-L (the `isal` package) at level 1 compresses about ten times faster
than zlib's default level for a few percent more bytes, and releases the
GIL, so layers compress side by side; its output is plain gzip (RFC 1952,
no name, mtime 0) that every registry and client reads. The same level on
the same bytes gives the same blob, so a layer compressed again (pushed to
another registry) gets the digest it had before.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from isal import isal_zlib

GZIP_LEVEL = 1
_GZIP_WBITS = 31  # a gzip wrapper, not zlib's
_CHUNK = 1 << 20


class LayerGzip:
    """Compress one layer tar chunk by chunk (call `step` from a worker thread)."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._encoder = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, _GZIP_WBITS)
        self._sha = hashlib.sha256()
        self.read = 0  # uncompressed bytes consumed
        self.size = 0  # compressed bytes produced
        self.done = False

    def step(self) -> bytes:
        """The next piece of gzip (possibly empty); `done` is set after the last."""
        data = self._source.read(_CHUNK)
        if data:
            self.read += len(data)
            out = self._encoder.compress(data)
        else:
            out = self._encoder.flush()
            self.done = True
        self._sha.update(out)
        self.size += len(out)
        return out

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()
