"""Restart policies: whether and when an exited container runs again."""

from __future__ import annotations

import asyncio
import logging

from dockyard.engine.container_records import ContainerRecords, _Live
from dockyard.engine.models import Container

log = logging.getLogger("dockyard.containers")


class RestartPolicy(ContainerRecords):
    """--restart: the next run after an exit, with dockerd's back-off."""

    @staticmethod
    def _should_restart(c: Container, live: _Live) -> bool:
        policy = c.host_config.restart_policy
        if c.manually_stopped or live.removal is not None or policy.name in ("", "no"):
            return False
        if policy.name == "on-failure":
            limit = policy.maximum_retry_count
            return c.state.exit_code != 0 and (limit == 0 or c.restart_count < limit)
        return True

    async def _restart_later(self, container_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        live = self._live_of(container_id)
        live.restart_task = None
        c = self._containers.get(container_id)
        if c is None or live.link is not None or c.manually_stopped:
            return
        try:
            async with live.start_lock:
                await self._start(c, live)
        except Exception as e:  # noqa: BLE001 - a failed restart is logged, not fatal
            log.warning("restart of %s failed: %s", container_id[:12], e)
            self._end_restarting(c, live)

    def _end_restarting(self, c: Container, live: _Live) -> None:
        """No next run after all (stopped, or its start failed): the container is exited."""
        if live.restart_task is not None:
            live.restart_task.cancel()
            live.restart_task = None
        if c.state.restarting:
            c.state.status, c.state.running, c.state.restarting = "exited", False, False
            waiters, live.exit_waiters = live.exit_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(c.state)
        self._save_state(c)
