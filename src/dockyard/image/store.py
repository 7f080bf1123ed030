"""Content-addressed image store: blobs, unpacked layers, image configs.

Layout under the data root (DESIGN.md):

    blobs/sha256/<hex>               layer tars (uncompressed), image configs, ...
                                     (a committed or loaded layer's tar only once
                                     save or push needs it: rebuilt from its
                                     directory, and its tar-split if loaded)
    layers/<chain-id-hex>/diff       unpacked layer, used as an overlay lowerdir
    layers/<chain-id-hex>/meta.json  {diff_id, chain_id, parent, size, tar?}
    layers/<chain-id-hex>/tar-split  a loaded layer's tar without its files' data

Everything appears atomically: blobs are written to a temporary file and
renamed, layers are unpacked into a temporary directory that is renamed into
place only once complete, so after a crash at any instant the store holds
whole blobs and whole layers only. Temporaries are named
".tmp-<pid>.<start time>-..." and swept when their process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.errors import InvalidParameter, NotFound, storage_full
from dockyard.image.atomic import (
    fsync_dir,
    remove_stale_temps,
    temp_name,
    write_file_atomic,
)
from dockyard.image.copied_layers import copy_tree, rebuild_tar
from dockyard.image.digest import chain_id as make_chain_id
from dockyard.image.digest import digest_hex, normalize_digest, sha256_digest
from dockyard.image.digesting import LayerDigest, is_compressed
from dockyard.image.image_configs import ImageConfigs
from dockyard.image.image_configs import go_architecture as go_architecture  # re-exported
from dockyard.image.image_configs import now_rfc3339 as now_rfc3339  # re-exported
from dockyard.image.layer_copy import NeedsUnpack
from dockyard.image.layer_retention import LayerRetention
from dockyard.image.layer_tar import write_layer_tar
from dockyard.image.layered_read import read_file as read_layered_file
from dockyard.image.tar_split import SPLIT_NAME, TarSplit, file_sha256, rebuild_split_tar
from dockyard.image.tarsafe import Readable, default_kernel, unpack_layer

# Threads that write a layer's small files (image/file_pool): the unpacking
# thread parses while they create, write and chown. Measured on 2 busy cores
# after deletions (a journal-less ext4 then scans recently freed inodes on each
# create): a Debian rootfs in 1.68 s with 4 of them, 2.31 s without.
_UNPACK_WORKERS = 4


@dataclass
class Layer:
    diff_id: str  # "sha256:..." of the uncompressed tar
    chain_id: str
    size: int  # unpacked bytes
    path: str  # .../layers/<hex>/diff
    parent: str | None = None  # chain id of the layer below


@dataclass
class UnpackedLayer:
    """A layer unpacked into temporaries, not yet named (ImageStore.unpack)."""

    diff_id: str
    size: int
    tmp_dir: str
    tmp_blob: str  # "" if it has none (tar_rebuilt)
    durable: bool = False  # its files are on disk (ImageStore.make_durable)
    # Its tar is write_layer_tar of its directory (copy_directory): no blob is
    # kept, one is rebuilt when needed (save, push).
    tar_rebuilt: bool = False
    # Its tar is kept as image/tar_split (docker load): no blob unless rebuilt.
    tar_split: bool = False

    def discard(self) -> None:
        """Remove what commit did not take (all of it, if never committed)."""
        _discard(self.tmp_dir, self.tmp_blob)


def _discard(tmp_dir: str, tmp_blob: str) -> None:
    if tmp_blob:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_blob)
    if os.path.lexists(tmp_dir):
        shutil.rmtree(tmp_dir)


class ImageStore(ImageConfigs, LayerRetention):
    """Blobs and layers here; image configs (image_configs) and what keeps or
    removes layers (layer_retention) in their own modules."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.blobs_dir = os.path.join(root, "blobs", "sha256")
        self.layers_dir = os.path.join(root, "layers")
        os.makedirs(self.blobs_dir, exist_ok=True)
        os.makedirs(self.layers_dir, exist_ok=True)
        # Serialises the short commit steps (renames, GC) in this process;
        # leases keep a GC from removing layers of an image being assembled.
        self.lock = threading.RLock()
        self._leases: list[set[str]] = []
        self._local = threading.local()
        self._sweep_temporaries()

    # -- blobs -------------------------------------------------------------------

    def _blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs_dir, digest_hex(digest))

    def put_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        path = self._blob_path(digest)
        if not os.path.exists(path):
            write_file_atomic(path, data)
        return digest

    def get_blob(self, digest: str) -> bytes:
        try:
            with open(self._blob_path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            pass
        with open(self.blob_path(digest), "rb") as f:  # a committed layer's, rebuilt
            return f.read()

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self._blob_path(digest))

    def blob_path(self, digest: str) -> str:
        """Path of a stored blob (to stream a layer tar for `docker save`). The tar
        of a committed layer (copy_directory) is rebuilt here when first needed."""
        path = self._blob_path(digest)
        if not os.path.exists(path) and not self._rebuild_layer_tar(normalize_digest(digest)):
            raise NotFound(f"blob {normalize_digest(digest)} not found")
        return path

    def _rebuild_layer_tar(self, diff_id: str) -> bool:
        """Write the blob of a committed layer with that diff_id from its directory
        (write_layer_tar gives the same bytes for the same tree); False if no such
        layer. The tar is checked against the diff_id before it is kept."""
        found = self._layer_with_tar(diff_id)
        if found is None:
            return False
        layer_dir, how = found
        diff = os.path.join(layer_dir, "diff")
        if how == _TAR_SPLIT:
            split = os.path.join(layer_dir, SPLIT_NAME)
            rebuild_split_tar(diff, split, diff_id, self._blob_path(diff_id), default_kernel())
        else:
            rebuild_tar(diff, diff_id, self._blob_path(diff_id))
        return True

    def _layer_with_tar(self, diff_id: str) -> tuple[str, str] | None:
        """(directory, how) of a layer whose tar can be made again, with that diff_id."""
        for chain in self.all_layers():
            try:
                with open(os.path.join(self._layer_dir(chain), "meta.json"), "rb") as f:
                    meta = json.load(f)
            except FileNotFoundError:
                continue  # removed meanwhile
            if meta.get("diff_id") == diff_id and meta.get("tar") in (_TAR_REBUILT, _TAR_SPLIT):
                return self._layer_dir(chain), meta["tar"]
        return None

    def has_layer_tar(self, diff_id: str) -> bool:
        """Whether the tar of a layer with that diff_id is here: as a blob, or
        made again when asked (`blob_path`)."""
        diff_id = normalize_digest(diff_id)
        return self.has_blob(diff_id) or self._layer_with_tar(diff_id) is not None

    # -- layers ------------------------------------------------------------------

    def _layer_dir(self, chain_id: str) -> str:
        return os.path.join(self.layers_dir, digest_hex(chain_id))

    def layer(self, chain_id: str) -> Layer:
        layer_dir = self._layer_dir(chain_id)
        try:
            with open(os.path.join(layer_dir, "meta.json"), "rb") as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise NotFound(f"layer {normalize_digest(chain_id)} not found") from None
        return Layer(
            diff_id=meta["diff_id"],
            chain_id=meta["chain_id"],
            size=meta["size"],
            path=os.path.join(layer_dir, "diff"),
            parent=meta.get("parent"),
        )

    def has_layer(self, chain_id: str) -> bool:
        return os.path.exists(os.path.join(self._layer_dir(chain_id), "meta.json"))

    def import_layer(
        self,
        stream: BinaryIO | Readable,
        parent_chain_id: str | None = None,
        *,
        allow_devices: bool = True,
        source_file: BinaryIO | None = None,
    ) -> Layer:
        """Store the layer tar (uncompressed) as a blob and unpack it, in one pass.

        The slow part (reading, hashing, unpacking) runs without the store
        lock, so several layers can be imported at once; only the final
        renames are serialised. The layer is pinned in the calling thread's
        open leases (see `lease`) before the lock is released.

        `source_file`, when `stream` reads a regular file on the store's
        filesystem (docker load's unpacked archive), lets a plain tar become
        the blob by a hard link instead of a copy.
        """
        if parent_chain_id is not None:
            parent_chain_id = normalize_digest(parent_chain_id)
            self.layer(parent_chain_id)  # fail fast, before reading the stream
        unpacked = self.unpack(stream, allow_devices=allow_devices, source_file=source_file)
        return self.commit(unpacked, parent_chain_id)

    def unpack(
        self,
        stream: BinaryIO | Readable,
        *,
        allow_devices: bool = True,
        source_file: BinaryIO | None = None,
        split_tar: bool = False,
    ) -> UnpackedLayer:
        """The first half of import_layer: hash and unpack into private temporaries,
        which need no parent yet, so the layers of one image can be unpacked side
        by side and committed in order. Discard what `commit` does not take.

        With `split_tar` (docker load) the tar is kept as image/tar_split, not
        copied to a blob: a second write (and sync) of every byte saved."""
        tmp_dir = temp_name(self.layers_dir)
        tmp_blob = temp_name(self.blobs_dir)
        link_fd = source_file.fileno() if source_file is not None else None
        if link_fd is not None and is_compressed(link_fd):
            link_fd = None  # its blob is the uncompressed tar: copy that
        diff = os.path.join(tmp_dir, "diff")
        split: TarSplit | None = None
        try:
            os.mkdir(tmp_dir, 0o700)
            blob_fd = None
            if split_tar and link_fd is None:
                split = TarSplit(
                    os.path.join(tmp_dir, SPLIT_NAME), diff, tmp_blob, default_kernel()
                )
            elif link_fd is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                blob_fd = os.open(tmp_blob, flags, 0o644)
            reader = LayerDigest(blob_fd, background=True)
            try:
                size = unpack_layer(
                    stream,
                    diff,
                    allow_devices=allow_devices,
                    on_read=reader,
                    workers=_UNPACK_WORKERS,
                    tar_assist=True,
                    split=split,
                )
                reader.finish()
                kept_split = split is not None and split.finish()
            finally:
                reader.stop()
                if blob_fd is not None:
                    os.close(blob_fd)
                if split is not None:
                    split.close()
            diff_id = "sha256:" + reader.sha.hexdigest()
            if link_fd is not None:
                self._link_blob(link_fd, reader.count, tmp_blob)
            elif split is not None and not kept_split and file_sha256(tmp_blob) != diff_id:
                # Assembled from the layer so far, then copied: checked as a whole.
                raise InvalidParameter("invalid layer archive: its tar could not be kept")
            os.chmod(tmp_dir, 0o755)
        except BaseException as e:
            _discard(tmp_dir, tmp_blob)
            # The blob copy (hashed on its own thread) or the files, whichever
            # filled the disk first: the same one clear error.
            full = storage_full(e)
            if full is not None and full is not e:
                raise full from e
            raise
        if kept_split:
            return UnpackedLayer(diff_id, size, tmp_dir, "", tar_split=True)
        return UnpackedLayer(diff_id, size, tmp_dir, tmp_blob)

    def materialize_tar(self, unpacked: UnpackedLayer) -> str:
        """A file holding the tar of a layer not yet committed (docker load of an
        image that has the same layer twice): its blob, assembled if it has none."""
        if not unpacked.tmp_blob:
            assert unpacked.tar_split
            tmp_blob = temp_name(self.blobs_dir)
            rebuild_split_tar(
                os.path.join(unpacked.tmp_dir, "diff"),
                os.path.join(unpacked.tmp_dir, SPLIT_NAME),
                unpacked.diff_id,
                tmp_blob,
                default_kernel(),
            )
            unpacked.tmp_blob = tmp_blob
        return unpacked.tmp_blob

    def make_durable(self, unpacked: Iterable[UnpackedLayer]) -> None:
        """Put unpacked layers (files and blob) on disk before commit names them:
        one syncfs of the store's file system for all of them, far cheaper than
        an fsync per file, and unlike sync() not waiting for other file systems."""
        pending = [one for one in unpacked if not one.durable]
        if not pending:
            return
        kernel = default_kernel()
        devices: set[int] = set()
        for directory in (self.layers_dir, self.blobs_dir):
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                device = os.fstat(fd).st_dev
                if device not in devices:
                    devices.add(device)
                    kernel.syncfs(fd)
            finally:
                os.close(fd)
        for one in pending:
            one.durable = True

    def commit(self, unpacked: UnpackedLayer, parent_chain_id: str | None) -> Layer:
        """The second half of import_layer: name the unpacked layer by its chain id
        (its parent must be present) and pin it in this thread's leases."""
        try:
            if parent_chain_id is not None:
                parent_chain_id = normalize_digest(parent_chain_id)
            self.make_durable([unpacked])
            diff_id = unpacked.diff_id
            chain = make_chain_id(parent_chain_id, diff_id)
            meta = {
                "diff_id": diff_id,
                "chain_id": chain,
                "parent": parent_chain_id,
                "size": unpacked.size,
            }
            if unpacked.tar_rebuilt:
                meta["tar"] = _TAR_REBUILT
            elif unpacked.tar_split:
                meta["tar"] = _TAR_SPLIT
            write_file_atomic(
                os.path.join(unpacked.tmp_dir, "meta.json"), json.dumps(meta).encode()
            )
            with self.lock:
                if parent_chain_id is not None:
                    self.layer(parent_chain_id)  # a GC may have run meanwhile
                blob_path = self._blob_path(diff_id)
                if unpacked.tmp_blob and not os.path.exists(blob_path):
                    os.rename(unpacked.tmp_blob, blob_path)
                    fsync_dir(self.blobs_dir)
                if not self.has_layer(chain):
                    os.rename(unpacked.tmp_dir, self._layer_dir(chain))
                    fsync_dir(self.layers_dir)
                    staged_in = os.path.dirname(unpacked.tmp_dir)
                    if staged_in != self.layers_dir:
                        fsync_dir(staged_in)  # the name it leaves (copied_layers.staging_dir)
                self._pin(chain)
                return self.layer(chain)
        finally:
            unpacked.discard()

    @staticmethod
    def _link_blob(fd: int, length: int, tmp_blob: str) -> None:
        """Make the source file (exactly the bytes hashed) the blob, root's and read-only."""
        if os.fstat(fd).st_size != length:
            raise InvalidParameter("invalid layer archive: the layer file changed while read")
        if os.geteuid() == 0:
            os.fchown(fd, 0, 0)  # the archive said who owns it: not for the store
        os.fchmod(fd, 0o644)  # nor setuid bits
        # By its path in the (private) unpacked archive, checked to be the same inode.
        try:
            os.link(os.readlink(f"/proc/self/fd/{fd}"), tmp_blob, follow_symlinks=False)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            # Another filesystem: copy after all.
            with open(tmp_blob, "xb") as out, open(os.dup(fd), "rb") as src:
                src.seek(0)
                shutil.copyfileobj(src, out, 1 << 20)
            return  # on disk by make_durable, with the layer's files
        linked, source = os.stat(tmp_blob, follow_symlinks=False), os.fstat(fd)
        if (linked.st_dev, linked.st_ino) != (source.st_dev, source.st_ino):
            raise InvalidParameter("invalid layer archive: the layer file changed while read")

    def import_directory(
        self,
        path: str,
        parent_chain_id: str | None = None,
        exclude: frozenset[str] | set[str] = frozenset(),
        stage_in: str | None = None,
    ) -> Layer:
        """`docker commit`: a container's overlay upper dir becomes a layer.

        Copied as a layer in the walk that archives it for its diffID
        (copy_directory); a tree the copy cannot take goes the way of a tar
        unpacked again (import_layer). Pause the container first if it runs,
        as dockerd does. `stage_in`: where the copy is made before it is
        named (copied_layers.staging_dir), e.g. the container's bundle.
        """
        if parent_chain_id is not None:
            parent_chain_id = normalize_digest(parent_chain_id)
            self.layer(parent_chain_id)  # fail fast, before reading the tree
        try:
            unpacked = self.copy_directory(path, exclude=exclude, stage_in=stage_in)
        except NeedsUnpack:
            return self._import_directory_tar(path, parent_chain_id, exclude)
        return self.commit(unpacked, parent_chain_id)

    def copy_directory(
        self,
        path: str,
        *,
        exclude: frozenset[str] | set[str] = frozenset(),
        stage_in: str | None = None,
    ) -> UnpackedLayer:
        """A directory tree with overlay whiteouts (a container's upper dir) as
        an unpacked layer, not yet named: give it to `commit` (with its parent),
        or discard it. Its diffID is that of write_layer_tar's tar of the tree,
        which is hashed, never written: the layer's blob is rebuilt from the
        layer's directory when first needed (`blob_path`). NeedsUnpack if the
        tree holds a name the unpacker would read as a whiteout (".wh.*")."""
        diff_id, size, tmp_dir = copy_tree(
            path, self.layers_dir, exclude, default_kernel(), _UNPACK_WORKERS, stage_in
        )
        return UnpackedLayer(diff_id, size, tmp_dir, "", tar_rebuilt=True)

    def _import_directory_tar(
        self,
        path: str,
        parent_chain_id: str | None = None,
        exclude: frozenset[str] | set[str] = frozenset(),
    ) -> Layer:
        """The tree archived (whiteouts converted to Docker's form) into a pipe
        that import_layer reads, so nothing is buffered whole."""
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                with open(write_fd, "wb") as out:
                    write_layer_tar(path, out, exclude=exclude)
            except BrokenPipeError:
                pass  # the importer gave up; its own error is the one to report
            except BaseException as e:  # handed over to the calling thread
                failure.append(e)

        writer = threading.Thread(target=produce, name="layer-tar-writer", daemon=True)
        writer.start()
        try:
            with open(read_fd, "rb") as stream:
                layer = self.import_layer(stream, parent_chain_id)
        except BaseException:
            # The read end is closed now, so a writer still busy gets EPIPE.
            writer.join()
            if failure:  # the root cause, rather than "truncated archive"
                raise failure[0] from None
            raise
        writer.join()
        if failure:
            raise failure[0]
        return layer

    # -- files inside images -------------------------------------------------------

    def read_file(self, dirs: list[str], path: str) -> bytes | None:
        """Read `path` through stacked layer dirs (top-most first); None if absent."""
        return read_layered_file(dirs, path)

    # -- housekeeping ----------------------------------------------------------------

    def _sweep_temporaries(self) -> None:
        """Remove leftovers of crashed processes (never those of live ones)."""
        for directory in (self.blobs_dir, self.layers_dir):
            remove_stale_temps(directory)


_TAR_REBUILT = "rebuilt"  # meta.json "tar": the blob is made from the directory when needed
_TAR_SPLIT = "split"  # meta.json "tar": the blob is made from tar-split and the directory


def check_image_id(text: str) -> str:
    """Normalise "sha256:<hex>" or "<hex>" to "sha256:<hex>"; InvalidParameter otherwise."""
    try:
        return normalize_digest(text)
    except InvalidParameter:
        raise InvalidParameter(f"invalid image id {text!r}") from None
