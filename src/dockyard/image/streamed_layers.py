"""`docker load` unpacking an archive's layers as they arrive.

A `docker save` archive names its layers in manifest.json or index.json,
which both formats write at the end. Spooling the whole archive to disk
before unpacking its layers (what dockerd does) costs a write and a read of
every layer byte; instead every member that looks like a layer tar (a tar
header, or gzip/bzip2/xz/zstd magic) is unpacked, hashed and kept as a blob
while it streams in, and only an empty placeholder is left where it was in
the unpacked archive. When the manifest is read, a layer path that resolves
to a placeholder takes its unpacked layer; members the manifest does not use
are discarded with their errors, as if never read.

A member named by a digest that the store already holds (a layer it has) is
spooled as before, not unpacked again: the manifest will most likely find
the layer present.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.errors import InvalidParameter
from dockyard.image.layered_read import open_file
from dockyard.image.store import ImageStore, UnpackedLayer
from dockyard.image.tar_reader import BLOCK, MemberData, TarEntry, TarReader
from dockyard.image.tarsafe import Readable

LayerProgress = Callable[[str, int, int], None]

_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
_USTAR = (b"ustar\x0000", b"ustar  \x00")


def looks_like_layer(head: bytes) -> bool:
    """A tar header block or compressed data: what a layer member starts with."""
    if head.startswith(_COMPRESSED):
        return True
    return len(head) == BLOCK and head[257:265] in _USTAR


@dataclass
class StreamedLayer:
    """A layer unpacked from a member of the archive as it arrived."""

    name: bytes  # the member's name in the archive
    unpacked: UnpackedLayer | None  # None once committed (or if it failed)
    raw_sha256: str  # hex digest of the member's bytes (compressed or not)
    error: InvalidParameter | None = None  # why it is not a layer
    taken: UnpackedLayer | None = None  # `unpacked`, once handed out

    def take(self) -> UnpackedLayer:
        """The unpacked layer, once. Used again (an image that has the same layer
        twice), the layer is unpacked anew from its tar (see `tar_path`)."""
        assert self.unpacked is not None
        self.taken, self.unpacked = self.unpacked, None
        return self.taken

    def tar_path(self, store: ImageStore) -> str:
        """The layer's tar, after `take`: its blob, committed or not yet (assembled
        from its tar-split if it has none yet)."""
        assert self.taken is not None
        if self.taken.tmp_dir and os.path.exists(self.taken.tmp_dir):
            return store.materialize_tar(self.taken)
        return store.blob_path(self.taken.diff_id)


class _RawHash:
    """The member's bytes as they pass, hashed (its name may be its digest)."""

    def __init__(self, source: MemberData) -> None:
        self._source = source
        self.sha = hashlib.sha256()

    def readinto(self, buf: memoryview) -> int:
        n = self._source.readinto(buf)
        self.sha.update(buf[:n])
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.sha.update(data)
        return data

    def drain(self) -> None:
        buf = memoryview(bytearray(1 << 20))
        while self.readinto(buf):
            pass


class _Counted:
    """Reports the bytes read of a member (dockerd's "Loading layer" progress)."""

    def __init__(self, source: Readable, report: Callable[[int], None]) -> None:
        self._source = source
        self._report = report
        self._count = 0

    def readinto(self, buf: memoryview) -> int:
        n = self._source.readinto(buf)  # type: ignore[attr-defined]
        self._count += n
        self._report(self._count)
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._count += len(data)
        self._report(self._count)
        return data


class StreamedLayers:
    """The `divert` of unpack_layer for a loaded archive (tarsafe.unpack_layer):
    takes the layer members as they arrive. `start(work)` first, then `find` for
    each layer path the manifest names, and `discard` at the end."""

    def __init__(self, store: ImageStore, progress: LayerProgress | None = None) -> None:
        self.store = store
        self.progress = progress
        self._work = ""
        self._by_file: dict[tuple[int, int], StreamedLayer] = {}
        self._all: list[StreamedLayer] = []

    def start(self, work: str) -> None:
        self._work = work

    def __call__(self, reader: TarReader, entry: TarEntry) -> Callable[[], None] | None:
        if entry.size < BLOCK or not looks_like_layer(reader.peek(BLOCK)):
            return None
        name = os.fsdecode(entry.name)
        named = _digest_in_name(name)
        if named is not None and self.store.has_layer_tar("sha256:" + named):
            return None  # most likely a layer the store has: spooled as before
        compressed = reader.peek(8).startswith(_COMPRESSED)
        # A plain tar's digest is its diff_id, hashed by the unpacking: only a
        # compressed one needs its own hash (its name may be that digest).
        raw = _RawHash(MemberData(reader)) if compressed else None
        source: Readable = raw or MemberData(reader)
        plain_named = named is not None and not compressed
        if self.progress is not None and plain_named:
            # A plain tar named by its digest is named by its diff_id: progress as dockerd.
            progress, total = self.progress, entry.size
            source = _Counted(source, lambda n, d=named: progress("sha256:" + d, n, total))
        layer = StreamedLayer(entry.name, None, "")
        self._all.append(layer)
        try:
            # Its tar kept as a tar-split (image/tar_split): no copy of the data.
            layer.unpacked = self.store.unpack(source, allow_devices=False, split_tar=True)
            if raw is not None:
                raw.drain()
        except InvalidParameter as e:
            # Not (necessarily) fatal: only if the manifest uses this member.
            # What is left of it is skipped by the archive's reader.
            if layer.unpacked is not None:
                layer.unpacked.discard()
                layer.unpacked = None
            layer.error = e
        if raw is not None:
            layer.raw_sha256 = raw.sha.hexdigest()
        elif layer.unpacked is not None:
            layer.raw_sha256 = layer.unpacked.diff_id.removeprefix("sha256:")
        if self.progress is not None and not plain_named and layer.unpacked is not None:
            diff_id = layer.unpacked.diff_id
            if not self.store.has_layer_tar(diff_id):
                self.progress(diff_id, entry.size, entry.size)
        return lambda: self._locate(layer)

    def _locate(self, layer: StreamedLayer) -> None:
        """The member's placeholder, just made by the unpacker: known by its file
        (whatever path leads there: the archive's symlinks)."""
        fd = open_file([self._work], _normalized(layer.name))
        if fd is None:
            return
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        self._by_file[(st.st_dev, st.st_ino)] = layer

    def find(self, fd: int) -> StreamedLayer | None:
        """The streamed layer whose placeholder `fd` opened, if any."""
        st = os.fstat(fd)
        if st.st_size != 0:
            return None  # replaced by a later member of the same name
        return self._by_file.get((st.st_dev, st.st_ino))

    def discard(self) -> None:
        for layer in self._all:
            if layer.unpacked is not None:
                layer.unpacked.discard()
                layer.unpacked = None


def _digest_in_name(name: str) -> str | None:
    parts = os.path.normpath(name).lstrip("/").split("/")
    if len(parts) == 3 and parts[:2] == ["blobs", "sha256"] and len(parts[2]) == 64:
        try:
            int(parts[2], 16)
        except ValueError:
            return None
        return parts[2]
    return None


def _normalized(name: bytes) -> str:
    return os.path.normpath(os.fsdecode(name).lstrip("/"))
