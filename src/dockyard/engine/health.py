"""HEALTHCHECK: probes run as execs in the container; starting/healthy/unhealthy.

The container's state keeps the result (persisted with the record), so `ps`,
`inspect` and `--filter health=` see it, and the probes resume after a daemon
restart as the container service reattaches to its monitor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from dockyard.engine.clock import parse_rfc3339, rfc3339
from dockyard.engine.models import Container, Health, HealthLog
from dockyard.errors import DockyardError, InvalidParameter

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.exec import ExecService

log = logging.getLogger("dockyard.health")

NS = 1_000_000_000
DEFAULT_INTERVAL = 30 * NS
DEFAULT_TIMEOUT = 30 * NS
DEFAULT_START_INTERVAL = 5 * NS
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5  # dockerd keeps the last five results
MAX_OUTPUT = 4096  # and the first 4 KiB of each probe's output
_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


def merge(user: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """dockerd's merge of the image's HEALTHCHECK under the user's --health-* values."""
    if not image:
        return user
    if user is None:
        return dict(image)
    out = dict(user)
    if not out.get("Test"):
        out["Test"] = image.get("Test")
    for key in (*_DURATIONS, "Retries"):
        if not out.get(key) and image.get(key):
            out[key] = image[key]
    return out


def validate(hc: dict[str, Any] | None) -> None:
    """dockerd's create checks on Config.Healthcheck."""
    if not hc:
        return
    for key in _DURATIONS:
        value = hc.get(key) or 0
        if not isinstance(value, int) or (value != 0 and value < 1_000_000):
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than 1ms")
    retries = hc.get("Retries") or 0
    if not isinstance(retries, int) or retries < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")
    test = hc.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise InvalidParameter("Healthcheck Test must be a list of strings")
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise InvalidParameter(f"unknown Healthcheck Test type {test[0]!r}")


def probe_argv(hc: dict[str, Any] | None) -> list[str] | None:
    """The command of a configured check; None when there is none (or NONE)."""
    test = (hc or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return list(test[1:]) or None


def status_suffix(c: Container) -> str:
    """What `ps` adds to "Up 5 seconds": " (healthy)", " (health: starting)"."""
    h = c.state.health
    if h is None or not c.state.running:
        return ""
    return " (health: starting)" if h.status == "starting" else f" ({h.status})"


class HealthService:
    def __init__(self, containers: ContainerService, execs: ExecService) -> None:
        self._containers = containers
        self._execs = execs
        self._tasks: dict[str, asyncio.Task[None]] = {}
        containers.run_hooks.append(self.container_running)
        containers.exit_hooks.append(self.container_stopped)

    def container_running(self, c: Container) -> None:
        argv = probe_argv(c.config.healthcheck)
        if argv is None:
            return
        if c.state.health is None:
            c.state.health = Health(status="starting")
            self._containers.save(c)
        self.container_stopped(c)
        self._tasks[c.id] = asyncio.get_running_loop().create_task(self._loop(c.id, argv))

    def container_stopped(self, c: Container) -> None:
        task = self._tasks.pop(c.id, None)
        if task is not None:
            task.cancel()

    async def shutdown(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def _loop(self, container_id: str, argv: list[str]) -> None:
        while True:
            c = self._containers.get(container_id)
            hc = c.config.healthcheck or {}
            started = parse_rfc3339(c.state.started_at)
            in_start = time.time() < started + (hc.get("StartPeriod") or 0) / NS
            health = c.state.health
            if in_start and health is not None and health.status == "starting":
                wait = hc.get("StartInterval") or DEFAULT_START_INTERVAL
            else:
                wait = hc.get("Interval") or DEFAULT_INTERVAL
            await asyncio.sleep(wait / NS)
            try:
                await self._probe(container_id, argv)
            except asyncio.CancelledError:
                raise
            except DockyardError as e:
                log.debug("health probe of %s: %s", container_id[:12], e.message)
                if not self._containers.get(container_id).state.running:
                    return

    async def _probe(self, container_id: str, argv: list[str]) -> None:
        c = self._containers.get(container_id)
        hc = c.config.healthcheck or {}
        timeout = (hc.get("Timeout") or DEFAULT_TIMEOUT) / NS
        start = rfc3339()
        code, output = await self._execs.run_probe(c.id, argv, timeout, MAX_OUTPUT)
        if code is None:
            code, output = -1, f"Health check exceeded timeout ({_go_duration(timeout)})"
        c = self._containers.get(container_id)
        if not c.state.running:
            return
        health = c.state.health or Health(status="starting")
        old = health.status
        entries = [
            *health.log,
            HealthLog(start=start, end=rfc3339(), exit_code=code, output=output),
        ]
        health.log = entries[-MAX_LOG_ENTRIES:]
        started = parse_rfc3339(c.state.started_at)
        in_start = time.time() < started + (hc.get("StartPeriod") or 0) / NS
        if code == 0:
            health.failing_streak = 0
            health.status = "healthy"
        elif not (in_start and old == "starting"):
            # Failures during the start period do not count (dockerd), once past it they do.
            health.failing_streak += 1
            if health.failing_streak >= (hc.get("Retries") or DEFAULT_RETRIES):
                health.status = "unhealthy"
        c.state.health = health
        self._containers.save(c)
        if health.status != old:
            self._containers.emit(c, f"health_status: {health.status}")


def _go_duration(seconds: float) -> str:
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


def to_builtins(h: Health) -> dict[str, Any]:
    return msgspec.to_builtins(h)
