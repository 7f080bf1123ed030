"""The image half of the store (ImageStore): image configs written and read as
blobs, an image's layers in order, and `docker import`'s one-layer image.

A mixin of ImageStore: it uses the store's blobs, layers, leases and lock.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, BinaryIO

from dockyard.errors import InvalidParameter, NotFound
from dockyard.image.changes import apply_changes
from dockyard.image.digest import chain_ids, normalize_digest

if TYPE_CHECKING:
    from dockyard.image.store import ImageStore, Layer
    from dockyard.image.tarsafe import Readable

_GO_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def now_rfc3339() -> str:
    """Current UTC time as Go's RFC3339Nano (what Docker writes in "created")."""
    ns = time.time_ns()
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def go_architecture() -> str:
    machine = platform.machine()
    return _GO_ARCH.get(machine, machine)


class ImageConfigs:
    """ImageStore's image configs (a mixin: self is the store)."""

    def create_image(
        self: ImageStore,
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

    def create_image_from_config(self: ImageStore, config_bytes: bytes) -> str:
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

    def image_config(self: ImageStore, image_id: str) -> dict:
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

    def image_diff_ids(self: ImageStore, image_id: str) -> list[str]:
        return list(self.image_config(image_id)["rootfs"].get("diff_ids") or [])

    def image_layers(self: ImageStore, image_id: str) -> list[Layer]:
        """Layers bottom-most first."""
        return [self.layer(c) for c in chain_ids(self.image_diff_ids(image_id))]

    def lower_dirs(self: ImageStore, image_id: str) -> list[str]:
        """Layer diff dirs top-most first: the order overlayfs wants in lowerdir=."""
        return [layer.path for layer in reversed(self.image_layers(image_id))]

    def image_size(self: ImageStore, image_id: str) -> int:
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
