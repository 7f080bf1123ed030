"""Start, exit, stop, kill, wait and restart of containers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal as signal_mod
import time

from dockyard.engine import etc_files, logconfig
from dockyard.engine.clock import ZERO_TIME
from dockyard.engine.container_records import ContainerRecords, _Live
from dockyard.engine.models import Container, ContainerState
from dockyard.engine.resource_events import network_event, volume_mounts
from dockyard.engine.signals import parse_signal
from dockyard.engine.start_trace import StartTimeline
from dockyard.errors import Conflict, InvalidParameter, NotModified, RuntimeFailure, storage_full
from dockyard.network.ports import AllocationFailed
from dockyard.runtime.launcher import ExitRecord, MonitorLink
from dockyard.runtime.spec import write_bundle

log = logging.getLogger("dockyard.containers")


# How long a SIGKILL waits for the container's death before `kill` returns (dockerd: 10s).
KILL_WAIT = 10.0


class ContainerLifecycle(ContainerRecords):
    """A container's runs: start, following its monitor, its exit, stop/kill/wait."""

    async def start(self, ref: str) -> Container:
        c = self.get(ref)
        live = self._live_of(c.id)
        # One start at a time: a concurrent second start finds the container running
        # (304, as dockerd answers it) instead of launching a second process.
        async with live.start_lock:
            if c.state.running:
                raise NotModified("container already started")
            try:
                return await self._start(c, live)
            except Exception as e:
                expected = isinstance(
                    e, RuntimeFailure | InvalidParameter | Conflict | AllocationFailed
                )
                if not (c.host_config.auto_remove and (expected or storage_full(e))):
                    raise
                failure = e
        # As dockerd: a --rm container that cannot start is removed (the CLI waits
        # for that with condition=removed).
        await self.remove(c.id, force=True)
        raise failure

    async def _start(self, c: Container, live: _Live) -> Container:
        if live.removal is not None or c.state.status == "removing":
            raise Conflict(f"cannot start container {c.id}: container is marked for removal")
        if c.id in self._copying:
            raise Conflict(f"cannot start container {c.id}: a copy into its files is in progress")
        mounted = False
        steps = StartTimeline()  # the daemon's part of the start trace
        try:
            await self._prepare_network(c)
            steps.mark("network: namespace, veth, address, ports, /etc/hosts")
            try:
                await self._attach_networks(c)
                steps.mark("user-defined networks, DNS")
                spec = self._run_spec(c)
                volume_mounts(self.events, c, "mount")
                mounted = True
                oci = spec.to_oci(c.id)
                steps.mark("image resolved: layers, user, mounts (RunSpec, config.json)")
                rotation = logconfig.rotation(c.host_config.log_config)
                if rotation is not None:
                    notes = oci.setdefault("annotations", {})
                    notes.update(rotation.annotations())
                    attrs = logconfig.extra_attributes(
                        c.host_config.log_config, c.config.labels or {}, c.config.env or []
                    )
                    if attrs:
                        notes[logconfig.ATTRS_ANNOTATION] = json.dumps(attrs, sort_keys=True)
                write_bundle(c.bundle, oci)
                steps.mark("bundle written")
                log_path = c.log_path if rotation is not None else ""  # the none driver
                link = await self._launcher.run(
                    c.id,
                    c.bundle,
                    log_path=log_path,
                    runtime_path=self._runtime_path(c),
                )
                steps.mark("monitor asked, container started")
            except BaseException:
                self._network_event(c, "disconnect")
                await self.networks.container_stopped(c.id)
                await self.networking.release(c)
                if mounted:
                    volume_mounts(self.events, c, "unmount")
                raise
        except (RuntimeFailure, InvalidParameter, Conflict, AllocationFailed) as e:
            c.state.error = e.message
            if isinstance(e, RuntimeFailure):
                c.state.exit_code = {"not-found": 127, "permission": 126}.get(e.kind, 128)
            self._save_state(c)
            raise
        c.manually_stopped = False
        c.state = ContainerState(
            status="running",
            running=True,
            pid=link.pid,
            started_at=link.started_at,
            finished_at=ZERO_TIME,
        )
        c.monitor_pid = link.monitor_pid
        self._follow(c, link)
        self._save_state(c)
        self.emit(c, "start")
        steps.mark("state saved, start event")
        self._start_timelines[c.id] = {"steps": steps.steps, "pid": os.getpid()}
        log.info("container %s started (pid %d)", c.short_id, link.pid)
        return c

    def _network_event(self, c: Container, action: str) -> None:
        """dockerd's network connect/disconnect events of the default bridge, host and
        none (the network service emits those of user-defined networks)."""
        ids = self.networking.network_ids()
        for name in c.endpoints or {}:
            if name in ids:
                attrs = {"container": c.id, "name": name, "type": "bridge"}
                self.events.emit("network", action, ids[name], attrs)
        mode = c.host_config.network_mode
        if mode in ("host", "none"):
            n = self.networks.by_name(mode)
            if n is not None:
                network_event(self.events, n, action, container=c.id)

    async def _attach_networks(self, c: Container) -> None:
        """Interfaces on the container's user-defined networks (in the sandbox the
        default bridge's part made, or in one of its own), and its DNS listener,
        before its process starts; its /etc/hosts names its first address."""
        self.networks.check_network_mode(c.id, c.name.lstrip("/"), c.host_config.network_mode)
        if not self.networks.endpoints_of(c.id):
            return
        if not c.sandbox_key:
            c.sandbox_key = await self.networking.create_sandbox(c.id)
        await self.networks.container_started(c.id, c.sandbox_key)
        first = c.endpoints.get(next(iter(c.endpoints), ""))
        if first is not None and c.host_config.network_mode not in ("", "default", "bridge"):
            hosts = etc_files.hosts_file(
                c.host_config,
                False,
                ip=first.ip,
                hostname=c.config.hostname,
                domainname=c.config.domainname,
                host_gateway=self.networking.host_gateway(),
            )
            etc_files.write_quick(c.hosts_path, hosts.encode())

    async def _prepare_network(self, c: Container) -> None:
        """The container's network namespace and bridge endpoint, and the /etc/hosts
        that names its address."""
        start = time.perf_counter_ns()
        try:
            ep = await self.networking.prepare(c)
        finally:
            calls = self.networking.last_trace.pop(c.id, None)
        if ep is None:
            self._network_event(c, "connect")  # host or none (or nothing)
            return
        self._network_event(c, "connect")
        hosts = etc_files.hosts_file(
            c.host_config,
            False,
            ip=ep.ip,
            hostname=c.config.hostname,
            domainname=c.config.domainname,
            host_gateway=self.networking.host_gateway(),
        )
        etc_files.write_quick(c.hosts_path, hosts.encode())
        # Kept in memory, not in a file: a write would cost the start more than
        # the work it records.
        self._network_traces[c.id] = {"ns": time.perf_counter_ns() - start, "calls": calls or []}

    def _follow(self, c: Container, link: MonitorLink) -> None:
        live = self._live_of(c.id)
        live.link = link
        live.hub.new_run()
        live.running.set()
        for hook in self.run_hooks:
            hook(c)

        async def pump() -> None:
            async for frame in link.frames():
                live.hub.publish(frame)

        async def watch() -> None:
            try:
                record = await link.wait()
            finally:
                await link.close()
            await self._on_exit(c.id, record)

        pump_task = asyncio.create_task(pump())

        async def watch_after_pump() -> None:
            await watch()
            # Output ends with the process; let attached clients drain what came last.
            await pump_task
            live.hub.end()

        task = asyncio.create_task(watch_after_pump())
        live.tasks.add(task)
        task.add_done_callback(live.tasks.discard)

    async def _on_exit(self, container_id: str, record: ExitRecord) -> None:
        c = self._containers.get(container_id)
        if c is None:
            return
        live = self._live_of(container_id)
        live.link = None
        live.running.clear()
        for hook in self.exit_hooks:
            hook(c)
        self._network_event(c, "disconnect")
        try:
            # User-defined networks first: their endpoints leave the record, then
            # the default bridge's part deletes the sandbox.
            await self.networks.container_stopped(c.id)
            await self.networking.release(c)
        except Exception as e:  # noqa: BLE001 - logged; the exit is recorded regardless
            log.warning("container %s: releasing its network failed: %s", c.short_id, e)
        volume_mounts(self.events, c, "unmount")
        c.state = ContainerState(
            status="exited",
            exit_code=record.exit_code,
            oom_killed=record.oom_killed,
            error=record.error,
            started_at=c.state.started_at,
            finished_at=record.finished_at,
            health=c.state.health,  # the last result stays for inspect, as dockerd's
        )
        if record.oom_killed:
            self.emit(c, "oom")
        self.emit(c, "die", exitCode=str(record.exit_code))
        restart = (
            not c.host_config.auto_remove
            and not self._shutting_down
            and self._should_restart(c, live)
        )
        if restart:
            # dockerd's SetRestarting: still "running" for ps, wait and rm, no process.
            c.state.status, c.state.running, c.state.restarting = "restarting", True, True
            c.restart_count += 1
        log.info("container %s exited with %d", c.short_id, record.exit_code)
        # Waiters first: a full disk that fails the save below must not leave them hanging.
        waiters, live.exit_waiters = live.exit_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(c.state)
        self._save_state(c)
        if c.host_config.auto_remove:
            await self.remove(c.id, force=True)
            return
        if restart:
            delay = min(0.1 * 2 ** min(c.restart_count, 10), 60.0)
            task = asyncio.create_task(self._restart_later(c.id, delay))
            live.restart_task = task
            # _restart_later clears restart_task once it runs: the loop keeps only weak
            # references, so without this one the task was collected mid-start.
            live.tasks.add(task)
            task.add_done_callback(live.tasks.discard)

    def waiter(self, ref: str, condition: str = "not-running") -> asyncio.Future[ContainerState]:
        """A future for the wait condition, registered now (before any start that follows)."""
        c = self.get(ref)
        live = self._live_of(c.id)
        fut: asyncio.Future[ContainerState] = asyncio.get_running_loop().create_future()
        if condition in ("", "not-running"):
            if not c.state.running:
                fut.set_result(c.state)
            else:
                live.exit_waiters.append(fut)
        elif condition == "next-exit":
            live.exit_waiters.append(fut)
        elif condition == "removed":
            live.removal_waiters.append(fut)
        else:
            raise InvalidParameter(f"invalid condition: {condition!r}")
        return fut

    async def wait(self, ref: str, condition: str = "not-running") -> ContainerState:
        return await self.waiter(ref, condition)

    async def kill(self, ref: str, signal: str | int | None = None) -> None:
        c = self.get(ref)
        signum = parse_signal(signal, signal_mod.SIGKILL)
        live = self._live_of(c.id)
        async with live.start_lock:
            pass  # a start under way finishes first
        if c.state.restarting:
            raise Conflict(
                f"Cannot kill container: {ref}: Container {c.id} is restarting, "
                "wait until the container is running"
            )
        if not c.state.running or live.link is None:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if signum in (signal_mod.SIGKILL, signal_mod.SIGTERM, signal_mod.SIGINT):
            c.manually_stopped = True
        exited = self.waiter(c.id, "not-running") if signum == signal_mod.SIGKILL else None
        await live.link.kill(signum)
        self.emit(c, "kill", signal=str(signum))
        await self._thaw_if_paused(c, live)
        if exited is not None:
            # As dockerd: a SIGKILL returns once the container is dead, so that
            # `kill` then `rm` finds it stopped.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), KILL_WAIT)

    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self.get(ref)
        live = self._live_of(c.id)
        async with live.start_lock:
            pass  # a start under way finishes first
        if c.state.restarting or (live.restart_task is not None and live.link is None):
            # Between two runs of a restart policy: stopping means "no next run".
            c.manually_stopped = True
            self._end_restarting(c, live)
            return
        if not c.state.running or live.link is None:
            raise NotModified("container already stopped")
        c.manually_stopped = not self._shutting_down
        signum = parse_signal(signal or c.config.stop_signal, signal_mod.SIGTERM)
        if timeout is None:
            timeout = c.config.stop_timeout if c.config.stop_timeout is not None else 10
        exited = self.waiter(c.id, "not-running")
        await live.link.kill(signum)
        self.emit(c, "kill", signal=str(signum))
        await self._thaw_if_paused(c, live)
        try:
            await asyncio.wait_for(asyncio.shield(exited), None if timeout < 0 else timeout)
        except TimeoutError:
            log.info("container %s did not stop in %ss: killing it", c.short_id, timeout)
            if live.link is not None:
                await live.link.kill(signal_mod.SIGKILL)
                self.emit(c, "kill", signal=str(int(signal_mod.SIGKILL)))
            await exited
        self.emit(c, "stop")

    async def _thaw_if_paused(self, c: Container, live: _Live) -> None:
        """A paused container is signalled, then thawed, so that it can act on the signal."""
        if c.state.paused and live.link is not None:
            # The monitor thaws a container it signals itself: the container may have
            # ended, and its monitor with it, before this resume reaches it.
            with contextlib.suppress(RuntimeFailure):
                await live.link.resume()
            c.state.paused = False
            c.state.status = "running"
            self._save(c)
            self.emit(c, "unpause")

    async def restart(
        self, ref: str, timeout: int | None = None, signal: str | None = None
    ) -> None:
        c = self.get(ref)
        if c.state.running:
            await self.stop(c.id, timeout, signal)
        await self.start(c.id)
        self.emit(c, "restart")
