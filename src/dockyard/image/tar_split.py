"""A loaded layer's tar kept as its non-data bytes, not as a copy (Docker's tar-split).

A layer that `docker load` brings must be given back byte for byte (save,
push): its diff_id is the hash of those bytes, and no tar writer would
make them again. Keeping the tar as a blob costs a second write of every
byte (and its sync). Instead, as the unpacker consumes the stream, every
byte that is not a regular file's data (headers, pax records, padding, the
end-of-archive blocks, data the unpacker skipped) is kept in a small file
beside the layer's directory, `tar-split`, and each file's data is kept as
a reference: its path in the layer and its size. The tar is assembled again
from both when save or push needs it, and kept only if it hashes to the
diff_id (a layer changed on disk is refused, never handed out).

A reference holds only while the file at its path is the one the unpacker
wrote: the first time the unpacker is about to remove or replace anything
it made (a later entry of the same name, a whiteout of a name of the same
layer), the tar so far is assembled into a blob file, and from then on the
stream is copied there as before (`before_removal`): such layers keep a
blob, checked against the diff_id once unpacked.

Format of `tar-split`: a magic line, then records: b"R" + u32 length + raw
bytes, or b"F" + u64 size + u32 path length + the layer-relative path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from dockyard.errors import DockyardError, KernelError
from dockyard.image.atomic import temp_name
from dockyard.image.copied_layers import keep_rebuilt_tar
from dockyard.kernel.securejoin import open_in_root

if TYPE_CHECKING:
    from dockyard.kernel.interface import Kernel

SPLIT_NAME = "tar-split"  # beside the layer's "diff" directory
_MAGIC = b"dockyard-tar-split 1\n"
_RAW = struct.Struct(">cI")
_FILE = struct.Struct(">cQI")
_FLUSH = 1 << 20  # buffered record bytes written at a time
_READ = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class TarSplit:
    """Fed by the tar reader with what it consumes (`raw`, `data`) and by the
    unpacker with the files whose data it wrote (`reference`). Writes `path`
    (the tar-split) or, after `before_removal`, the whole tar to `blob_path`."""

    def __init__(self, path: str, dest: str, blob_path: str, kernel: Kernel) -> None:
        self.path = path
        self._dest = dest  # the layer's directory, as the unpacker fills it
        self._blob_path = blob_path
        self._kernel = kernel
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._out = bytearray(_MAGIC)  # records not written yet
        self._raw = bytearray()  # raw bytes of the record being gathered
        self._ref_left = 0  # data bytes still covered by the last reference
        self.to_blob = False  # the stream is copied to the blob (before_removal)
        self._blob_fd = -1

    # -- fed while unpacking -------------------------------------------------------------

    def raw(self, chunk: bytes | memoryview) -> None:
        if self.to_blob:
            _write_all(self._blob_fd, chunk)
            return
        self._raw += chunk
        if len(self._raw) >= _FLUSH:
            self._end_raw()

    def data(self, chunk: bytes | memoryview) -> None:
        """Member data consumed: what a reference covers is not kept."""
        left = self._ref_left
        if left >= len(chunk):
            self._ref_left = left - len(chunk)
            return
        if left:  # never split by the unpacker, but be exact anyway
            chunk = memoryview(chunk)[left:]
            self._ref_left = 0
        self.raw(chunk)

    def reference(self, rel: bytes, size: int) -> None:
        """The next `size` data bytes are those of the file at layer path `rel`."""
        if self.to_blob or not size:
            return
        assert not self._ref_left
        self._end_raw()
        self._out += _FILE.pack(b"F", size, len(rel)) + rel
        self._ref_left = size
        if len(self._out) >= _FLUSH:
            self._write_out()

    def before_removal(self) -> None:
        """The unpacker is about to remove or replace what it made (a reference may
        name it): assemble the tar so far into the blob, and copy the rest there.
        Every file written so far must be complete (the unpacker drained)."""
        if self.to_blob:
            return
        self._end_raw()
        self._write_out()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        blob_fd = self._blob_fd = os.open(self._blob_path, flags, 0o644)
        root = os.open(self._dest, _DIR_FLAGS)
        try:
            assemble(self.path, root, self._kernel, lambda b: _write_all(blob_fd, b))
        finally:
            os.close(root)
        os.close(self._fd)
        self._fd = -1
        os.unlink(self.path)
        self.to_blob = True

    def finish(self) -> bool:
        """All consumed: True if the tar-split is complete (no blob), False if the
        tar went to the blob instead."""
        if self.to_blob:
            return False
        self._end_raw()
        self._write_out()
        return True

    def close(self) -> None:
        """Close the files (written or not: the caller removes them on failure)."""
        for fd in (self._fd, self._blob_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._blob_fd = -1

    def _end_raw(self) -> None:
        if self._raw:
            self._out += _RAW.pack(b"R", len(self._raw))
            self._out += self._raw
            self._raw = bytearray()
        if len(self._out) >= _FLUSH:
            self._write_out()

    def _write_out(self) -> None:
        if self._out:
            _write_all(self._fd, self._out)
            self._out = bytearray()


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class SplitMismatch(DockyardError):
    """The layer's directory no longer gives its tar."""


def assemble(
    split_path: str, root_fd: int, kernel: Kernel, write: Callable[[bytes], object]
) -> None:
    """The tar again: the raw records of `split_path` and the data of the files
    they reference, read inside the layer directory `root_fd` (paths resolved
    by the kernel inside it, as the unpacker resolved them; no symlink leads out)."""
    parents: dict[bytes, int] = {}
    try:
        with open(split_path, "rb") as f:
            if f.read(len(_MAGIC)) != _MAGIC:
                raise SplitMismatch("not a tar-split file")
            while kind := f.read(1):
                if kind == b"R":
                    (length,) = struct.unpack(">I", _read_exactly(f, 4))
                    while length:
                        chunk = _read_exactly(f, min(length, _READ))
                        write(chunk)
                        length -= len(chunk)
                elif kind == b"F":
                    size, name_len = struct.unpack(">QI", _read_exactly(f, 12))
                    rel = _read_exactly(f, name_len)
                    _copy_file(parents, root_fd, kernel, rel, size, write)
                else:
                    raise SplitMismatch("corrupt tar-split record")
    finally:
        for fd in parents.values():
            os.close(fd)


def _read_exactly(f: object, n: int) -> bytes:
    data = f.read(n)  # type: ignore[attr-defined]
    if len(data) != n:
        raise SplitMismatch("truncated tar-split file")
    return data


def _copy_file(
    parents: dict[bytes, int],
    root_fd: int,
    kernel: Kernel,
    rel: bytes,
    size: int,
    write: Callable[[bytes], object],
) -> None:
    parent_rel, _, base = rel.rpartition(b"/")
    parent = parents.get(parent_rel)
    shown = rel.decode("utf-8", "backslashreplace")
    if parent is None:
        if len(parents) >= 64:
            for fd in parents.values():
                os.close(fd)
            parents.clear()
        try:
            parent = open_in_root(kernel, root_fd, os.fsdecode(parent_rel) or "/", None)
        except (KernelError, DockyardError) as e:
            raise SplitMismatch(f"{shown}: its directory is gone ({e})") from None
        parents[parent_rel] = parent
    try:
        fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as e:
        raise SplitMismatch(f"{shown}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            raise SplitMismatch(f"{shown}: not the file of {size} bytes the layer wrote")
        left = size
        while left:
            chunk = os.read(fd, min(left, _READ))
            if not chunk:
                raise SplitMismatch(f"{shown}: shorter than the layer wrote")
            write(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)


def rebuild_split_tar(
    diff_dir: str, split_path: str, diff_id: str, blob_path: str, kernel: Kernel
) -> None:
    """Write the tar of a loaded layer as its blob, atomically, only if it hashes
    to `diff_id` (else the layer was changed on disk: refused)."""
    directory = os.path.dirname(blob_path)
    tmp = temp_name(directory)
    sha = hashlib.sha256()
    root = os.open(diff_dir, _DIR_FLAGS)
    try:
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:

            def write(chunk: bytes) -> None:
                sha.update(chunk)
                _write_all(out, chunk)

            try:
                assemble(split_path, root, kernel, write)
            except SplitMismatch as e:
                raise DockyardError(f"layer {diff_id}: cannot rebuild its tar: {e}") from None
            os.fsync(out)
        finally:
            os.close(out)
        keep_rebuilt_tar(tmp, blob_path, "sha256:" + sha.hexdigest(), diff_id)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(root)


def file_sha256(path: str) -> str:
    """ "sha256:<hex>" of a file's bytes."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_READ):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()
