"""What ps, inspect and the start trace show of containers."""

from __future__ import annotations

import asyncio
import os
import time

from dockyard.engine import start_trace
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
        """The last start of a container: every kernel call with its start and duration,
        the phases, and the daemon's and the CLI's part on the same clock (what the 2013
        article had to dig out with strace)."""
        c = self.get(ref)
        trace = start_trace.assemble(
            start_trace.read_bundle_trace(c.bundle, ref),
            self._network_traces.get(c.id),
            self._start_timelines.get(c.id),
        )
        trace["Id"] = c.id
        trace["Command"] = [c.path, *c.args]
        trace["StartedAt"] = c.state.started_at
        return trace

    def perfetto_trace(self, ref: str) -> dict:
        """The start trace in the Chrome/Perfetto trace-event format."""
        return start_trace.to_perfetto(self.start_trace(ref))

    def note_start_request(self, ref: str, start_ns: int, client_timing: str | None) -> None:
        """The API request of the start just made, and the instants its client sent."""
        now = time.perf_counter_ns()
        try:
            c = self.get(ref)
        except NotFound:
            return  # a --rm container that could not start is gone already
        daemon = self._start_timelines.get(c.id)
        if daemon is None:
            return
        daemon["request"] = {
            "name": "POST /containers/{id}/start",
            "start": start_ns,
            "ns": now - start_ns,
        }
        daemon["client"] = start_trace.parse_client_timing(client_timing, now)

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
