"""Content-addressed image store: blobs, unpacked layers, image configs.

Layout under the data root (DESIGN.md):

    blobs/sha256/<hex>               layer tars (uncompressed), image configs, ...
                                     (a committed layer's tar only once save or
                                     push needs it: rebuilt from its directory)
    layers/<chain-id-hex>/diff       unpacked layer, used as an overlay lowerdir
    layers/<chain-id-hex>/meta.json  {diff_id, chain_id, parent, size}

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
import platform
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.errors import InvalidParameter, NotFound
from dockyard.image.atomic import fsync_dir, is_stale_temp, temp_name, write_file_atomic
from dockyard.image.changes import apply_changes
from dockyard.image.copied_layers import copy_tree, rebuild_tar
from dockyard.image.digest import chain_id as make_chain_id
from dockyard.image.digest import chain_ids, digest_hex, normalize_digest, sha256_digest
from dockyard.image.digesting import LayerDigest, is_compressed
from dockyard.image.layer_copy import NeedsUnpack
from dockyard.image.layer_tar import write_layer_tar
from dockyard.image.layered_read import read_file as read_layered_file
from dockyard.image.tarsafe import Readable, default_kernel, unpack_layer

# Threads that write a layer's small files (image/file_pool). Creating an inode
# mostly waits (on the file system's journal, more so on a busy machine), so
# they pay off even on 2 cores: a Debian rootfs unpacked in 1.68 s with 4 of
# them, 2.31 s without, 2.01 s by `tar -x`, interleaved medians on 2 busy cores.
_UNPACK_WORKERS = 4

_GO_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


@dataclass
class Layer:
    diff_id: str  # "sha256:..." of the uncompressed tar
    chain_id: str
    size: int  # unpacked bytes
    path: str  # .../layers/<hex>/diff
    parent: str | None = None  # chain id of the layer below


def now_rfc3339() -> str:
    """Current UTC time as Go's RFC3339Nano (what Docker writes in "created")."""
    ns = time.time_ns()
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def go_architecture() -> str:
    machine = platform.machine()
    return _GO_ARCH.get(machine, machine)


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

    def discard(self) -> None:
        """Remove what commit did not take (all of it, if never committed)."""
        _discard(self.tmp_dir, self.tmp_blob)


def _discard(tmp_dir: str, tmp_blob: str) -> None:
    if tmp_blob:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_blob)
    if os.path.lexists(tmp_dir):
        shutil.rmtree(tmp_dir)


class ImageStore:
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
        for chain in self.all_layers():
            try:
                with open(os.path.join(self._layer_dir(chain), "meta.json"), "rb") as f:
                    meta = json.load(f)
            except FileNotFoundError:
                continue  # removed meanwhile
            if meta.get("diff_id") != diff_id or meta.get("tar") != _TAR_REBUILT:
                continue
            diff = os.path.join(self._layer_dir(chain), "diff")
            rebuild_tar(diff, diff_id, self._blob_path(diff_id))
            return True
        return False

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
    ) -> UnpackedLayer:
        """The first half of import_layer: hash and unpack into private temporaries,
        which need no parent yet, so the layers of one image can be unpacked side
        by side and committed in order. Discard what `commit` does not take."""
        tmp_dir = temp_name(self.layers_dir)
        tmp_blob = temp_name(self.blobs_dir)
        link_fd = source_file.fileno() if source_file is not None else None
        if link_fd is not None and is_compressed(link_fd):
            link_fd = None  # its blob is the uncompressed tar: copy that
        try:
            os.mkdir(tmp_dir, 0o700)
            blob_fd = None
            if link_fd is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                blob_fd = os.open(tmp_blob, flags, 0o644)
            reader = LayerDigest(blob_fd, background=True)
            try:
                size = unpack_layer(
                    stream,
                    os.path.join(tmp_dir, "diff"),
                    allow_devices=allow_devices,
                    on_read=reader,
                    workers=_UNPACK_WORKERS,
                )
                reader.finish()
            finally:
                reader.stop()
                if blob_fd is not None:
                    os.close(blob_fd)
            if link_fd is not None:
                self._link_blob(link_fd, reader.count, tmp_blob)
            os.chmod(tmp_dir, 0o755)
        except BaseException:
            _discard(tmp_dir, tmp_blob)
            raise
        return UnpackedLayer("sha256:" + reader.sha.hexdigest(), size, tmp_dir, tmp_blob)

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
    ) -> Layer:
        """`docker commit`: a container's overlay upper dir becomes a layer.

        Copied as a layer in the walk that archives it for its diffID
        (copy_directory); a tree the copy cannot take goes the way of a tar
        unpacked again (import_layer). Pause the container first if it runs,
        as dockerd does.
        """
        if parent_chain_id is not None:
            parent_chain_id = normalize_digest(parent_chain_id)
            self.layer(parent_chain_id)  # fail fast, before reading the tree
        try:
            unpacked = self.copy_directory(path, exclude=exclude)
        except NeedsUnpack:
            return self._import_directory_tar(path, parent_chain_id, exclude)
        return self.commit(unpacked, parent_chain_id)

    def copy_directory(
        self, path: str, *, exclude: frozenset[str] | set[str] = frozenset()
    ) -> UnpackedLayer:
        """A directory tree with overlay whiteouts (a container's upper dir) as
        an unpacked layer, not yet named: give it to `commit` (with its parent),
        or discard it. Its diffID is that of write_layer_tar's tar of the tree,
        which is hashed, never written: the layer's blob is rebuilt from the
        layer's directory when first needed (`blob_path`). NeedsUnpack if the
        tree holds a name the unpacker would read as a whiteout (".wh.*")."""
        diff_id, size, tmp_dir = copy_tree(
            path, self.layers_dir, exclude, default_kernel(), _UNPACK_WORKERS
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

    @contextlib.contextmanager
    def lease(self, shared: set[str] | None = None) -> Iterator[set[str]]:
        """Protect layers from garbage collection while an image is being assembled.

        Every layer imported (or looked up with `pin`) by this thread inside
        the block survives delete_image/prune_layers until the block ends, so
        a pull that has imported some layers and not yet written the image
        config cannot lose them to a concurrent `docker rmi`:

            with store.lease():
                base = store.import_layer(tar1)
                top = store.import_layer(tar2, base.chain_id)
                store.create_image([base.diff_id, top.diff_id], config)

        Passing the set of an open lease joins it from another thread (a
        pull imports its layers from several); the lease lasts until the
        block that opened it ends.
        """
        pinned: set[str] = shared if shared is not None else set()
        stack = self._thread_leases()
        with self.lock:
            stack.append(pinned)
            owner = not any(p is pinned for p in self._leases)
            if owner:
                self._leases.append(pinned)
        try:
            yield pinned
        finally:
            with self.lock:
                # By identity: two leases with equal contents are still two leases.
                _remove_identical(stack, pinned)
                if owner:
                    _remove_identical(self._leases, pinned)

    def pin(self, chain_id: str) -> Layer:
        """Pin an existing layer in this thread's open leases (NotFound if gone)."""
        with self.lock:
            layer = self.layer(chain_id)
            self._pin(layer.chain_id)
            return layer

    def _thread_leases(self) -> list[set[str]]:
        stack = getattr(self._local, "leases", None)
        if stack is None:
            stack = self._local.leases = []
        return stack

    def _pin(self, chain: str) -> None:
        for pinned in self._thread_leases():
            pinned.add(chain)

    def _leased(self) -> set[str]:
        out: set[str] = set()
        for pinned in self._leases:
            out |= pinned
        return out

    # -- images ------------------------------------------------------------------

    def create_image(
        self,
        diff_ids: list[str],
        config: dict,
        *,
        comment: str = "",
        created: str | None = None,
        author: str = "",
        history: list[dict] | None = None,
        extra: dict | None = None,
    ) -> str:
        """Write the image config JSON (Docker/OCI shape) as a blob; return the image id.

        `extra` adds dockerd's fields of committed images ("container",
        "container_config") after "config"."""
        diff_ids = [normalize_digest(d) for d in diff_ids]
        doc: dict = {"architecture": go_architecture()}
        if author:
            doc["author"] = author
        if comment:
            doc["comment"] = comment
        doc["config"] = config
        doc.update(extra or {})
        doc["created"] = created or now_rfc3339()
        doc["history"] = history if history is not None else []
        doc["os"] = "linux"
        doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        with self.lock:
            for chain in chain_ids(diff_ids):
                self.layer(chain)  # every layer must be present
            return self.put_blob(data)

    def create_image_from_config(self, config_bytes: bytes) -> str:
        """Store an existing image config as is (docker load, pull): its bytes
        are its identity, so they are never re-serialised. Its layers must be
        present."""
        try:
            doc = json.loads(config_bytes)
            diff_ids = [normalize_digest(d) for d in doc["rootfs"]["diff_ids"]]
        except (ValueError, KeyError, TypeError):
            raise InvalidParameter("invalid image config") from None
        with self.lock:
            for chain in chain_ids(diff_ids):
                self.layer(chain)
            return self.put_blob(config_bytes)

    def image_config(self, image_id: str) -> dict:
        try:
            data = self.get_blob(image_id)
        except NotFound:
            raise NotFound(f"No such image: {image_id}") from None
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("rootfs"), dict):
            raise NotFound(f"No such image: {image_id}")  # a blob, but not an image config
        return doc

    def image_diff_ids(self, image_id: str) -> list[str]:
        return list(self.image_config(image_id)["rootfs"].get("diff_ids") or [])

    def image_layers(self, image_id: str) -> list[Layer]:
        """Layers bottom-most first."""
        return [self.layer(c) for c in chain_ids(self.image_diff_ids(image_id))]

    def lower_dirs(self, image_id: str) -> list[str]:
        """Layer diff dirs top-most first: the order overlayfs wants in lowerdir=."""
        return [layer.path for layer in reversed(self.image_layers(image_id))]

    def image_size(self, image_id: str) -> int:
        return sum(layer.size for layer in self.image_layers(image_id))

    def import_rootfs(
        self, stream: BinaryIO | Readable, *, changes: Iterable[str] = (), message: str = ""
    ) -> str:
        """`docker import`: one layer from a rootfs tar, config from `changes`."""
        # Changes first: a typo must not cost unpacking a multi-GB tar.
        config = apply_changes({}, list(changes))
        comment = message or "Imported from -"
        with self.lease():
            layer = self.import_layer(stream)
            created = now_rfc3339()
            return self.create_image(
                [layer.diff_id],
                config,
                comment=comment,
                created=created,
                history=[{"created": created, "comment": comment}],
            )

    def delete_image(self, image_id: str, keep: set[str]) -> None:
        """Remove an image config; then its layers (and their tar blobs) that no
        image in `keep` uses and no open lease pins. Layers of other images are
        never touched (see prune_layers for orphans). Deleting an image whose
        config is already gone is not an error: after a crash the engine can
        simply repeat the deletion."""
        with self.lock:
            image_id = normalize_digest(image_id)
            try:
                candidates = chain_ids(self.image_diff_ids(image_id))
            except NotFound:
                candidates = []
            kept_ids = {normalize_digest(i) for i in keep}
            if image_id not in kept_ids:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._blob_path(image_id))
                fsync_dir(self.blobs_dir)
            used = self._chains_used_by(kept_ids) | self._leased()
            self._remove_layers([c for c in candidates if c not in used])

    def discard(self, chains: list[str], configs: list[str], keep: set[str]) -> None:
        """Undo a failed load or pull: remove the image configs and layers it
        added that no image in `keep` uses and no open lease pins."""
        with self.lock:
            kept_ids = {normalize_digest(i) for i in keep}
            for config in configs:
                if normalize_digest(config) not in kept_ids:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._blob_path(config))
            fsync_dir(self.blobs_dir)
            used = self._chains_used_by(kept_ids) | self._leased()
            # Top-most first: a layer is never removed before the ones above it.
            self._remove_layers([c for c in reversed(chains) if c not in used])

    def prune_layers(self, keep: set[str]) -> list[str]:
        """Remove every layer neither used by an image in `keep` nor leased
        (e.g. left by an interrupted pull); return their chain ids."""
        with self.lock:
            used = self._chains_used_by({normalize_digest(i) for i in keep}) | self._leased()
            return self._remove_layers([c for c in self.all_layers() if c not in used])

    def all_layers(self) -> list[str]:
        return [
            "sha256:" + name
            for name in os.listdir(self.layers_dir)
            if not name.startswith(".")
            and os.path.exists(os.path.join(self.layers_dir, name, "meta.json"))
        ]

    def _chains_used_by(self, image_ids: set[str]) -> set[str]:
        used: set[str] = set()
        for image_id in image_ids:
            try:
                used.update(chain_ids(self.image_diff_ids(image_id)))
            except NotFound:
                continue  # nothing of it is on disk, so nothing to keep
        return used

    def _remove_layers(self, chains: list[str]) -> list[str]:
        removed: list[str] = []
        freed_diff_ids: set[str] = set()
        for chain in chains:
            try:
                layer = self.layer(chain)
            except NotFound:
                continue
            # Rename first: the layer vanishes atomically, the slow delete follows.
            doomed = temp_name(self.layers_dir, "-deleted")
            os.rename(self._layer_dir(chain), doomed)
            fsync_dir(self.layers_dir)
            shutil.rmtree(doomed)
            removed.append(chain)
            freed_diff_ids.add(layer.diff_id)
        if freed_diff_ids:
            still_used = set()
            for chain in self.all_layers():
                with contextlib.suppress(NotFound):
                    still_used.add(self.layer(chain).diff_id)
            for diff_id in freed_diff_ids - still_used:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._blob_path(diff_id))
            fsync_dir(self.blobs_dir)
        return removed

    # -- files inside images -------------------------------------------------------

    def read_file(self, dirs: list[str], path: str) -> bytes | None:
        """Read `path` through stacked layer dirs (top-most first); None if absent."""
        return read_layered_file(dirs, path)

    # -- housekeeping ----------------------------------------------------------------

    def _sweep_temporaries(self) -> None:
        """Remove leftovers of crashed processes (never those of live ones)."""
        for directory in (self.blobs_dir, self.layers_dir):
            for name in os.listdir(directory):
                if not is_stale_temp(name):
                    continue
                path = os.path.join(directory, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)


_TAR_REBUILT = "rebuilt"  # meta.json "tar": the blob is made from the directory when needed


def _remove_identical(items: list[set[str]], item: set[str]) -> None:
    for i, candidate in enumerate(items):
        if candidate is item:
            del items[i]
            return


def check_image_id(text: str) -> str:
    """Normalise "sha256:<hex>" or "<hex>" to "sha256:<hex>"; InvalidParameter otherwise."""
    try:
        return normalize_digest(text)
    except InvalidParameter:
        raise InvalidParameter(f"invalid image id {text!r}") from None
