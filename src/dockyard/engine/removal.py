"""Removing containers: refused while running unless forced, once even when asked twice."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal as signal_mod

from dockyard.engine.container_records import ContainerRecords, _Live
from dockyard.engine.models import Container
from dockyard.errors import Conflict, storage_full

log = logging.getLogger("dockyard.containers")


class ContainerRemoval(ContainerRecords):
    """rm (-f, -v) and --rm's removal at exit."""

    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.id in self._copying:
            raise Conflict(f"cannot remove container {c.id}: a copy into its files is in progress")
        live = self._live_of(c.id)
        async with live.start_lock:
            pass  # a start under way finishes first
        if c.state.running:
            if not force:
                # dockerd's words (daemon/delete.go), "restarting" between two runs.
                state = "restarting" if c.state.restarting else "running"
                raise Conflict(
                    f'cannot remove container "{c.name}": container is {state}: stop the '
                    "container before removing or force remove"
                )
            c.manually_stopped = True
            if live.link is None:
                self._end_restarting(c, live)  # restarting: no process to kill
            else:
                exited = self.waiter(c.id, "not-running")
                await live.link.kill(signal_mod.SIGKILL)
                await exited
        if live.removal is None:
            # The first remover does the work (an auto-remove may have begun meanwhile);
            # any other waits for it, so `rm -f` of a --rm container succeeds.
            live.removal = asyncio.ensure_future(self._delete(c, live, volumes))
        await asyncio.shield(live.removal)

    async def _delete(self, c: Container, live: _Live, volumes: bool = False) -> None:
        async with live.commit_lock:
            pass  # a commit copying into the bundle finishes first (it refuses after this)
        if live.restart_task is not None:
            live.restart_task.cancel()
        c.state.status = "removing"
        # A crash from here on: restore() finishes the removal (the record says
        # "removing" or, on a full disk where that could not be written, the bundle is gone).
        self._save_state(c)
        scratch = os.path.join(c.bundle, "cp-root")
        if os.path.ismount(scratch):
            # a cp of the stopped container was cut short by a crash: unmount its view
            # (volumes included) before anything under the bundle is deleted
            from dockyard.kernel.flags import MNT_DETACH
            from dockyard.kernel.linux import LinuxKernel

            LinuxKernel().umount2(scratch, MNT_DETACH)
        # The bundle first: on a full disk it holds the space the record's deletion needs.
        await asyncio.to_thread(shutil.rmtree, c.bundle, True)
        self.networks.container_removed(c.id)
        try:
            self._store.delete_container(c.id)
        except Exception as e:
            full = storage_full(e)
            if full is None:
                raise
            log.error("container %s: record not deleted (%s): restore() will", c.short_id, full)
        self._unsaved.discard(c.id)
        del self._containers[c.id]
        self._network_traces.pop(c.id, None)
        self._start_timelines.pop(c.id, None)
        self._live.pop(c.id, None)
        if volumes or c.host_config.auto_remove:
            # rm -v and --rm: the anonymous volumes go with the container, named ones stay
            for mp in c.mount_points or []:
                if mp.type == "volume" and mp.anonymous and not self._users_of_volume(mp.name):
                    self.volumes.remove(mp.name, force=True)
        live.hub.end()
        for hook in self.removal_hooks:
            hook(c.id)
        self.emit(c, "destroy")
        for fut in live.removal_waiters + live.exit_waiters:
            if not fut.done():
                fut.set_result(c.state)
        log.info("container %s removed", c.short_id)

    async def _finish_removal(self, c: Container) -> None:
        live = self._live_of(c.id)
        if live.removal is None:
            live.removal = asyncio.ensure_future(self._delete(c, live))
        await asyncio.shield(live.removal)
