"""Layers copied from a directory tree (`docker commit`, build steps): made by
LayerCopy in the walk that hashes their tar, which is never written; the tar
is rebuilt from the layer's directory, and checked, when save or push needs it
(write_layer_tar gives the same bytes for the same tree)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from typing import TYPE_CHECKING, BinaryIO

from dockyard.errors import DockyardError
from dockyard.image.atomic import fsync_dir, temp_name
from dockyard.image.layer_copy import LayerCopy
from dockyard.image.layer_tar import write_layer_tar

if TYPE_CHECKING:
    from dockyard.kernel.interface import Kernel


class TarDigest:
    """The file object write_layer_tar writes to: hashes the tar (its diff_id)
    and passes it on to `out` if given."""

    def __init__(self, out: BinaryIO | None = None) -> None:
        self._out = out
        self._sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        if self._out is not None:
            self._out.write(data)
        return len(data)

    def diff_id(self) -> str:
        return "sha256:" + self._sha.hexdigest()


def copy_tree(
    path: str,
    layers_dir: str,
    exclude: frozenset[str] | set[str],
    kernel: Kernel,
    workers: int = 0,
    stage_in: str | None = None,
) -> tuple[str, int, str]:
    """Copy `path` as a layer into a new temporary directory (its tree under
    "diff"); return (diff_id, size, temporary directory). It is made in
    `stage_in` if that is on the file system of `layers_dir` (see
    staging_dir), else in `layers_dir`; the store renames it into `layers_dir`.
    `workers`: threads that write its small files (image/layer_copy).
    Raises layer_copy.NeedsUnpack for a tree the copy leaves to the unpacker."""
    tmp_dir = temp_name(staging_dir(layers_dir, stage_in))
    sink = TarDigest()
    try:
        os.mkdir(tmp_dir, 0o700)
        diff = os.path.join(tmp_dir, "diff")
        os.mkdir(diff, 0o755)
        diff_fd = os.open(diff, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            copy = LayerCopy(diff_fd, kernel, workers)
            try:
                write_layer_tar(path, sink, exclude=exclude, copy=copy)  # type: ignore[arg-type]
            finally:
                copy.close()
        finally:
            os.close(diff_fd)
        os.chmod(tmp_dir, 0o755)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return sink.diff_id(), copy.size, tmp_dir


def staging_dir(layers_dir: str, stage_in: str | None) -> str:
    """Where a copied layer's directory is made before it is named.

    Next to the tree it is copied from (a container's bundle), not in the
    layers directory: ext4 places a new directory starting from the block
    group where its parent last allocated one, and for the layers directory
    that is the previous layer, the very inodes an `rmi` of it has just
    freed. On a file system without a journal every one of those is skipped
    (recently_deleted) at each inode the copy creates: a commit of ~7,400
    files right after an rmi took ~1.9x the time and ~2.5x the CPU
    (bench/commit_bench, "after deletions"). A container's bundle last
    allocated where the container was made, past what earlier removals
    freed (dockerd's layers and container layers share one directory, with
    the same effect). A rename only works within one file system: on
    another, the layers directory."""
    if stage_in is None:
        return layers_dir
    try:
        same = os.stat(stage_in).st_dev == os.stat(layers_dir).st_dev
    except FileNotFoundError:
        return layers_dir
    return stage_in if same else layers_dir


def rebuild_tar(diff_dir: str, diff_id: str, blob_path: str) -> None:
    """Write the tar of a copied layer's directory as its blob, atomically, only
    if it still hashes to `diff_id` (else the layer was changed on disk)."""
    directory = os.path.dirname(blob_path)
    tmp = temp_name(directory)
    try:
        with open(tmp, "xb") as out:
            sink = TarDigest(out)
            write_layer_tar(diff_dir, sink, threaded=True)  # type: ignore[arg-type]
            out.flush()
            os.fsync(out.fileno())
        keep_rebuilt_tar(tmp, blob_path, sink.diff_id(), diff_id)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def keep_rebuilt_tar(tmp: str, blob_path: str, got: str, diff_id: str) -> None:
    """Name the tar rebuilt in `tmp` (written and synced) as the layer's blob if it
    hashes to `diff_id`; else the layer was changed on disk, and it is refused
    (removing `tmp` is the caller's)."""
    if got != diff_id:
        raise DockyardError(
            f"layer {diff_id}: its directory no longer gives its tar "
            f"(got {got}); the layer was changed on disk"
        )
    os.chmod(tmp, 0o644)
    os.rename(tmp, blob_path)
    fsync_dir(os.path.dirname(blob_path))
