"""What ps, inspect and the start trace show of containers."""

from __future__ import annotations

import asyncio
import os

from dockyard.engine.container_records import ContainerRecords
from dockyard.engine.filters import check_container_filters, container_matches
from dockyard.engine.models import Container
from dockyard.errors import NotFound


class ContainerViews(ContainerRecords):
    """ps (list and filters), the image name it shows, sizes and the start trace."""

    def list(
        self,
        *,
        all_: bool = False,
        limit: int = -1,
        filters: dict[str, list[str]] | None = None,
    ) -> list[Container]:
        items = sorted(self._containers.values(), key=lambda c: c.created_unix, reverse=True)
        filters = filters or {}
        if not all_ and limit <= 0 and "status" not in filters and "exited" not in filters:
            items = [c for c in items if c.state.running]
        check_container_filters(filters)
        items = [c for c in items if container_matches(c, filters, self)]
        if limit > 0:
            items = items[:limit]
        return items

    def image_name(self, c: Container) -> str:
        """What `ps` shows as IMAGE: the name given at create while it still names the
        container's image, else the image id (dockerd's rule)."""
        try:
            if self._images.resolve(c.config.image) == c.image:
                return c.config.image
        except NotFound:
            pass
        return c.image

    def resolve_image(self, name: str) -> str:
        return self._images.resolve(name)

    def start_trace(self, ref: str) -> dict:
        """The runtime's record of the last start: every kernel call with its duration,
        and the phases (what the 2013 article had to dig out with strace)."""
        import json

        c = self.get(ref)
        try:
            with open(os.path.join(c.bundle, "start-trace.json")) as f:
                trace = json.load(f)
        except FileNotFoundError:
            raise NotFound(f"No start trace for container {ref}: it has not been started") from None
        except (OSError, ValueError) as e:
            raise NotFound(f"No readable start trace for container {ref}: {e}") from None
        network = self._network_traces.get(c.id)
        if network is not None:  # a start on a bridge, since the daemon started
            # The daemon's share before the runtime's: the namespace, veth, address and
            # ports (no call at all when a spare sandbox was ready), the hosts file.
            trace["calls"] = list(network.get("calls") or []) + list(trace.get("calls") or [])
            trace.setdefault("phases", {})["network_ns"] = int(network.get("ns") or 0)
        trace["Id"] = c.id
        trace["Command"] = [c.path, *c.args]
        trace["StartedAt"] = c.state.started_at
        return trace

    async def size(self, c: Container) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): bytes in the container layer, and with the image."""
        rw = await asyncio.to_thread(_du, os.path.join(c.bundle, "upper"))
        return rw, rw + self._images.blobs.image_size(c.image)


def _du(path: str) -> int:
    """dockerd's directory.Size: the bytes of every non-directory entry, a file
    with several links counted once (directories' own sizes are not data)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
