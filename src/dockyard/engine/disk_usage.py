"""`docker system df`: the space images, containers and volumes take.

As dockerd (GET /system/df): the sum of every layer once (LayersSize); per
image, its size, the part of it other images share and how many containers
use it; per container, its own layer (SizeRw) and with its image
(SizeRootFs); per volume, its size and how many containers mount it. Only
the kinds asked for are measured (a volume walk can take long).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dockyard.engine.volumes import _tree_size
from dockyard.errors import InvalidParameter
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
        out.layers_size, out.images = await asyncio.to_thread(_images, svc)
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


def _images(svc: Services) -> tuple[int, list[ImageUsage]]:
    images = svc.images
    blobs = images.blobs
    layer_size = {c: blobs.layer(c).size for c in blobs.all_layers()}
    records = images.list()
    chains = {r.id: chain_ids(blobs.image_diff_ids(r.id)) for r in records}
    users = Counter(chain for cs in chains.values() for chain in set(cs))
    usage = []
    for r in records:
        shared = sum(layer_size.get(c, 0) for c in chains[r.id] if users[c] > 1)
        usage.append(ImageUsage(r, shared, len(images.users_of(r.id))))
    return sum(layer_size.values()), usage
