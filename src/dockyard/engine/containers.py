"""The container service: the state machine of containers and the rules dockerd applies.

It owns container records (persisted in the store), turns a record into a runtime
`RunSpec` at start, keeps one `MonitorLink` per running container, and fans its
output out to attached clients. Nothing here speaks HTTP.

Each concern has its module; `ContainerService` puts them together:
- container_records: the records, lookups, saves and events every part stands on
- container_create: create (checks, the image's config merged) and config changes
- runspec: the runtime's RunSpec of a container at start
- lifecycle: start, exit, stop, kill, wait, restart
- restart: restart policies
- removal: rm
- container_output / output_hub: attach, resize, logs; output fanned out to clients
- container_views: what ps and inspect show; container_files: docker cp's view
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil

from dockyard.engine.clock import ZERO_TIME, parse_rfc3339, rfc3339
from dockyard.engine.container_create import ContainerCreation
from dockyard.engine.container_files import ContainerFileAccess
from dockyard.engine.container_output import AttachStreams, ContainerOutput
from dockyard.engine.container_records import ContainerRecords
from dockyard.engine.container_views import ContainerViews
from dockyard.engine.lifecycle import KILL_WAIT, ContainerLifecycle
from dockyard.engine.output_hub import Frame, OutputHub
from dockyard.engine.removal import ContainerRemoval
from dockyard.engine.restart import RestartPolicy
from dockyard.engine.runspec import RunSpecBuilder
from dockyard.engine.signals import parse_signal
from dockyard.image.atomic import remove_stale_temps
from dockyard.runtime.launcher import ExitRecord, read_exit

# Importable from here as before the split.
__all__ = [
    "KILL_WAIT",
    "AttachStreams",
    "ContainerService",
    "Frame",
    "OutputHub",
    "parse_signal",
]

log = logging.getLogger("dockyard.containers")


class ContainerService(
    ContainerCreation,
    ContainerLifecycle,
    RestartPolicy,
    ContainerRemoval,
    ContainerOutput,
    ContainerViews,
    ContainerFileAccess,
    RunSpecBuilder,
    ContainerRecords,
):
    # daemon lifetime

    async def restore(self) -> None:
        """After a daemon (re)start: reattach to living monitors, record the dead,
        and sweep the directories of creates that a crash cut short (no record)."""
        for entry in os.listdir(self._root):
            if entry not in self._containers:
                log.info("removing %s: a create the daemon did not finish", entry[:12])
                await asyncio.to_thread(shutil.rmtree, os.path.join(self._root, entry), True)
        for c in self._containers.values():
            if os.path.isdir(c.bundle):
                # A commit cut short by a crash left its copy of the upper dir here
                # (image/copied_layers.staging_dir); a live process's temporaries stay.
                await asyncio.to_thread(remove_stale_temps, c.bundle)
        for c in list(self._containers.values()):
            if c.state.status == "removing" or not os.path.isdir(c.bundle):
                # A removal cut short (by a crash, or a full disk that kept its record).
                await self._finish_removal(c)
                continue
            if not c.state.running:
                continue
            c.state.restarting = False  # the daemon that was restarting it is gone
            link = await self._launcher.reattach(c.id, c.bundle)
            if link is not None:
                log.info("reattached to container %s (pid %d)", c.short_id, link.pid)
                self._follow(c, link)
                continue
            record = read_exit(c.bundle) or ExitRecord(
                exit_code=255, finished_at=rfc3339(), error="container monitor vanished"
            )
            await self._on_exit(c.id, record)
        await self.networking.restore(list(self._containers.values()), self._save)
        await self.networks.restore(
            [(c.id, c.sandbox_key) for c in self._containers.values() if c.state.running]
        )
        for c in list(self._containers.values()):
            live = self._live_of(c.id)
            policy = c.host_config.restart_policy.name
            if (
                policy in ("always", "unless-stopped")
                and (not c.state.running or (c.state.restarting and live.link is None))
                and c.state.started_at != ZERO_TIME
                and parse_rfc3339(c.state.finished_at)
                # dockerd's restart manager: `always` comes back at a daemon start even
                # after a `docker stop`; only `unless-stopped` honours the stop.
                and not (c.manually_stopped and policy == "unless-stopped")
            ):
                # At daemon start, at once rather than after the policy's back-off.
                if live.restart_task is not None:
                    live.restart_task.cancel()
                    live.restart_task = None
                try:
                    async with live.start_lock:
                        await self._start(c, live)
                except Exception as e:  # noqa: BLE001
                    log.warning("could not restart %s: %s", c.short_id, e)
                    self._end_restarting(c, live)

    async def shutdown(self, live_restore: bool) -> None:
        """dockerd stops running containers at shutdown unless live-restore is on."""
        self._shutting_down = True
        if not live_restore:
            running = [c for c in self._containers.values() if c.state.running]
            await asyncio.gather(
                *(self.stop(c.id, c.config.stop_timeout) for c in running),
                return_exceptions=True,
            )
        # Last chance for records a full disk kept in memory (restore() reads the
        # true exits from exit.json if this fails too).
        self._save_pending()
        for live in self._live.values():
            for task in list(live.tasks):
                task.cancel()
            if live.restart_task is not None:
                live.restart_task.cancel()
            if live.link is not None:
                await live.link.close()
        await self.networks.shutdown(live_restore)
        await self.networking.shutdown(live_restore)
