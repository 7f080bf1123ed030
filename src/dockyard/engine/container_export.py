"""`docker export`: a container's file tree (its image's layers under its own
layer, whiteouts applied) as one flat tar, without volumes or other mounts,
as dockerd archives the container's root filesystem mount.

The merged view is read from the layer directories themselves
(layer_tar.write_merged_tar: every step an openat(O_NOFOLLOW) on a
directory fd), so it needs no mount, works on stopped containers too, and a
symlink the container planted is archived as a symlink, never followed.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import IO, TYPE_CHECKING

from dockyard.engine.threads import produce_in_thread
from dockyard.image.digest import chain_ids
from dockyard.image.layer_tar import write_merged_tar

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.images import ImageService


async def export(
    containers: ContainerService,
    images: ImageService,
    ref: str,
    write: Callable[[bytes], Awaitable[None]],
) -> None:
    c = containers.get(ref)
    upper = os.path.join(c.bundle, "upper")
    blobs = images.blobs

    def work(out: IO[bytes]) -> None:
        # Pinned: a forced rmi of the image meanwhile must not take its layers.
        with blobs.lease():
            for chain in chain_ids(blobs.image_diff_ids(c.image)):
                blobs.pin(chain)
            write_merged_tar([upper, *blobs.lower_dirs(c.image)], out)

    await produce_in_thread(work, write, "container-export")
    containers.emit(c, "export")
