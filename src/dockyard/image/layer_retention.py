"""What keeps a layer in the store and what removes it (ImageStore): leases that
pin the layers of an image being assembled, and the deletion of images and of
the layers (with their tar blobs) that nothing uses or pins any more.

A mixin of ImageStore: it uses the store's layers, blobs and lock.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dockyard.errors import NotFound
from dockyard.image.atomic import fsync_dir, temp_name
from dockyard.image.digest import chain_ids, normalize_digest

if TYPE_CHECKING:
    from dockyard.image.store import ImageStore, Layer


class LayerRetention:
    """ImageStore's leases and deletions (a mixin: self is the store)."""

    @contextlib.contextmanager
    def lease(self: ImageStore, shared: set[str] | None = None) -> Iterator[set[str]]:
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

    def pin(self: ImageStore, chain_id: str) -> Layer:
        """Pin an existing layer in this thread's open leases (NotFound if gone)."""
        with self.lock:
            layer = self.layer(chain_id)
            self._pin(layer.chain_id)
            return layer

    def _thread_leases(self: ImageStore) -> list[set[str]]:
        stack = getattr(self._local, "leases", None)
        if stack is None:
            stack = self._local.leases = []
        return stack

    def _pin(self: ImageStore, chain: str) -> None:
        for pinned in self._thread_leases():
            pinned.add(chain)

    def _leased(self: ImageStore) -> set[str]:
        out: set[str] = set()
        for pinned in self._leases:
            out |= pinned
        return out

    def delete_image(self: ImageStore, image_id: str, keep: set[str]) -> None:
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

    def discard(self: ImageStore, chains: list[str], configs: list[str], keep: set[str]) -> None:
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

    def prune_layers(self: ImageStore, keep: set[str]) -> list[str]:
        """Remove every layer neither used by an image in `keep` nor leased
        (e.g. left by an interrupted pull); return their chain ids."""
        with self.lock:
            used = self._chains_used_by({normalize_digest(i) for i in keep}) | self._leased()
            return self._remove_layers([c for c in self.all_layers() if c not in used])

    def all_layers(self: ImageStore) -> list[str]:
        return [
            "sha256:" + name
            for name in os.listdir(self.layers_dir)
            if not name.startswith(".")
            and os.path.exists(os.path.join(self.layers_dir, name, "meta.json"))
        ]

    def _chains_used_by(self: ImageStore, image_ids: set[str]) -> set[str]:
        used: set[str] = set()
        for image_id in image_ids:
            try:
                used.update(chain_ids(self.image_diff_ids(image_id)))
            except NotFound:
                continue  # nothing of it is on disk, so nothing to keep
        return used

    def _remove_layers(self: ImageStore, chains: list[str]) -> list[str]:
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


def _remove_identical(items: list[set[str]], item: set[str]) -> None:
    for i, candidate in enumerate(items):
        if candidate is item:
            del items[i]
            return
