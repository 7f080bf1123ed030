"""Which image a build step may reuse (dockerd's classic image cache).

Local: a child of the step's parent image whose `container_config` is the
one the step would write (the instruction, the env it sees, the checksum of
what it copies). With --cache-from: also the given images' own history,
as dockerd's imageCacheFrom does: a source whose history and layers begin
with the parent's, and whose next entry was made by the same instruction
(`created_by`), gives the step its layer without running it, and the
result becomes a local image (and so local cache) like any other step's.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from dockyard.engine.image_commit import ChildImage, write_child_image
from dockyard.errors import NotFound
from dockyard.image.digest import chain_ids

if TYPE_CHECKING:
    from dockyard.engine.images import ImageService


class StepCache:
    def __init__(self, images: ImageService, sources: list[str]) -> None:
        self.images = images
        # The --cache-from images, resolved (their configs are read once).
        self.sources = [images.resolve(s) for s in sources]

    def local(self, parent: str, container_config: dict[str, Any]) -> str | None:
        candidates = self.images.children_of(parent) if parent else self._roots()
        for child in sorted(candidates, key=self._created, reverse=True):
            try:
                cfg = self.images.config(child)
            except NotFound:
                continue
            if cfg.get("container_config") == container_config:
                return child
        return None

    async def from_sources(self, parent: str, child: ChildImage) -> str | None:
        """A step's image made from a --cache-from source's history, if one matches."""
        if not self.sources:
            return None
        base = self.images.config(parent) if parent else {}
        history = list(base.get("history") or [])
        diff_ids = list((base.get("rootfs") or {}).get("diff_ids") or [])
        for source in self.sources:
            cfg = self.images.config(source)
            s_history = list(cfg.get("history") or [])
            s_diffs = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
            n = len(history)
            if len(s_history) <= n or not _same_history(s_history[:n], history):
                continue
            if s_diffs[: len(diff_ids)] != diff_ids:
                continue
            entry = s_history[n]
            if entry.get("created_by") != child.created_by:
                continue
            layer_diff = None if entry.get("empty_layer") else s_diffs[len(diff_ids)]
            return await self._restore(parent, diff_ids, layer_diff, child)
        return None

    async def _restore(
        self, parent: str, diff_ids: list[str], layer_diff: str | None, child: ChildImage
    ) -> str:
        blobs = self.images.blobs
        loop = asyncio.get_running_loop()

        def work() -> str:
            with blobs.lease():
                layer = None
                if layer_diff is not None:
                    layer = blobs.pin(chain_ids([*diff_ids, layer_diff])[-1])
                image_id = write_child_image(blobs, parent or None, layer, child)

                async def register() -> None:
                    self.images.register_child(image_id, parent)

                asyncio.run_coroutine_threadsafe(register(), loop).result()
                return image_id

        return await asyncio.to_thread(work)

    def _roots(self) -> list[str]:
        return [i for i in self.images.image_ids() if not self.images.get(i).parent]

    def _created(self, image_id: str) -> str:
        try:
            return self.images.get(image_id).created
        except NotFound:
            return ""


def _same_history(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return all(
        x.get("created_by") == y.get("created_by")
        and bool(x.get("empty_layer")) == bool(y.get("empty_layer"))
        for x, y in zip(a, b, strict=True)
    )
