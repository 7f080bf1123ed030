"""`docker system df`: the space images, containers and volumes take.

As dockerd (GET /system/df): the sum of every layer once (LayersSize); per
image, its size, the part of it other images share and how many containers
use it; per container, its own layer (SizeRw) and with its image
(SizeRootFs); per volume, its size and how many containers mount it. Only
the kinds asked for are measured (a volume walk can take long).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dockyard.engine.volumes import _tree_size
from dockyard.errors import InvalidParameter, NotFound
from dockyard.image.digest import chain_ids

if TYPE_CHECKING:
    from dockyard.engine.models import Container, ImageRecord, Volume
    from dockyard.engine.services import Services

KINDS = ("container", "image", "volume", "build-cache")


@dataclass
class ImageUsage:
    record: ImageRecord
    shared_size: int
    containers: int


@dataclass
class ContainerUsage:
    container: Container
    size_rw: int
    size_root_fs: int


@dataclass
class VolumeUsage:
    volume: Volume
    size: int
    ref_count: int


@dataclass
class DiskUsage:
    layers_size: int = 0
    images: list[ImageUsage] | None = None
    containers: list[ContainerUsage] | None = None
    volumes: list[VolumeUsage] | None = None
    build_cache: list[object] | None = field(default=None)


async def disk_usage(svc: Services, kinds: list[str]) -> DiskUsage:
    for kind in kinds:
        if kind not in KINDS:
            raise InvalidParameter(f"unknown object type: {kind}")
    wanted = set(kinds or KINDS)
    out = DiskUsage()
    if "image" in wanted:
        # What the service knows is read here, on the loop; the disk in a thread.
        records = svc.images.list()
        users = {r.id: len(svc.images.users_of(r.id)) for r in records}
        out.layers_size, out.images = await asyncio.to_thread(_images, svc, records, users)
    if "container" in wanted:
        out.containers = []
        for c in svc.containers.list(all_=True):
            rw, rootfs = await svc.containers.size(c)
            out.containers.append(ContainerUsage(c, rw, rootfs))
    if "volume" in wanted:
        out.volumes = []
        for v in svc.volumes.list():
            size = await asyncio.to_thread(_tree_size, v.mountpoint)
            out.volumes.append(VolumeUsage(v, size, len(svc.volumes.users_of(v.name))))
    if "build-cache" in wanted:
        out.build_cache = []  # no build cache is kept
    return out


def _images(
    svc: Services, records: list[ImageRecord], users: dict[str, int]
) -> tuple[int, list[ImageUsage]]:
    """Layer sizes from the store (off the loop); an image or a layer removed
    meanwhile by a concurrent rmi is simply not counted."""
    blobs = svc.images.blobs
    layer_size: dict[str, int] = {}
    for chain in blobs.all_layers():
        with contextlib.suppress(NotFound):
            layer_size[chain] = blobs.layer(chain).size
    chains: dict[str, list[str]] = {}
    for r in records:
        with contextlib.suppress(NotFound):
            chains[r.id] = chain_ids(blobs.image_diff_ids(r.id))
    shared_by = Counter(chain for cs in chains.values() for chain in set(cs))
    usage = []
    for r in records:
        if r.id not in chains:
            continue
        shared = sum(layer_size.get(c, 0) for c in chains[r.id] if shared_by[c] > 1)
        usage.append(ImageUsage(r, shared, users.get(r.id, 0)))
    return sum(layer_size.values()), usage
