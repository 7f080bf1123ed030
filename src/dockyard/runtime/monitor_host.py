"""The monitor host: one process that monitors many containers.

A forked Python process costs ~0.8 MB of private memory before it does
anything (CPython 3.11 writes reference counts into every page it touches,
and copy-on-write makes each such page its own), and a container's monitor
~3.6 MB: beyond the 1 MB per idle container that conmon-like monitors cost.
So the forkserver forks one monitor host (ahead of the first start), and
every container's Monitor (monitor.py) runs inside it, on one shared epoll
reactor: a running container then costs what its Monitor object, its pipes
and its log file take (see bench/monitor_memory_bench.py).

What a monitor guarantees still holds: the host is detached (its own
session, not the daemon's child once the forkserver is gone), so
containers, their logs and their exit records survive a daemon restart or
crash; each container keeps its path socket <bundle>/monitor.sock and bundle
lock, so reattaching is unchanged. A bug in one container's callback ends
that container only (Monitor.crashed). A start does not hold the loop while
the container's init sets up (mounts, pivot_root...): its status socket is
one more fd of the reactor (Monitor.begin_async). What is shared: a SIGKILL
of the host (or a crash of the interpreter) ends all its containers, as the
death of containerd ends containers without shims.

The host takes requests from the forkserver on its channel (SOCK_SEQPACKET,
one JSON message with the daemon's link fd attached, as the spare does).
When the channel closes (the forkserver, hence the daemon, is gone) it takes
no new containers and exits once its last container has ended; a new daemon
gets a host of its own. SIGTERM takes every container down through the
normal exit path (exit.json, cgroups removed), as it does for one monitor,
and the host takes no more (the next start gets a new host).
Exec sessions run here too, beside their container's monitor, which hands
them the connection that asked (exec_monitor.py). Containers of another runtime
(--runtime runc) keep a forked monitor each (forkserver.py), and so do execs into
them: they hold a runtime process of their own anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import traceback
from collections.abc import Callable

from dockyard.errors import RuntimeFailure
from dockyard.kernel.interface import Kernel
from dockyard.runtime import frames
from dockyard.runtime.exec_monitor import ExecMonitor
from dockyard.runtime.monitor import Monitor, _Client, _Reactor, detach_stdio
from dockyard.runtime.spec import ExecSpec


class _ReactorView:
    """One monitor's handle on the shared reactor: its callbacks' exceptions end
    that monitor's container only."""

    def __init__(self, shared: _Reactor, host: MonitorHost) -> None:
        self.shared = shared
        self.host = host
        self.monitor: Monitor | None = None

    def _guard(self, cb: Callable[[], None]) -> Callable[[], None]:
        def guarded() -> None:
            try:
                cb()
            except Exception as exc:  # noqa: BLE001 - one container's bug must not stop the others
                if self.monitor is not None:
                    self.host.crashed(self.monitor, exc)

        return guarded

    def on_read(self, fd: int, cb: Callable[[], None] | None) -> None:
        self.shared.on_read(fd, None if cb is None else self._guard(cb))

    def on_write(self, fd: int, cb: Callable[[], None] | None) -> None:
        self.shared.on_write(fd, None if cb is None else self._guard(cb))

    def forget(self, fd: int) -> None:
        self.shared.forget(fd)


class MonitorHost:
    def __init__(self, kernel: Kernel, chan: socket.socket) -> None:
        self.kernel = kernel
        self.chan: socket.socket | None = chan
        self.reactor = _Reactor()
        self.monitors: dict[str, Monitor] = {}  # by bundle (an exec's: see start_exec)
        self.stopping = False  # SIGTERM: every container goes down, those starting too
        self.reactor.on_read(chan.fileno(), self._request)

    def _request(self) -> None:
        assert self.chan is not None
        try:
            msg, fds, _flags, _addr = socket.recv_fds(self.chan, 65536, 1, socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            msg, fds = b"", []
        if not msg:
            # The forkserver is gone: no new containers; exit after the last one.
            for fd in fds:
                os.close(fd)
            if self.monitors:
                # The forkserver waits for our exit unless told we stay.
                with contextlib.suppress(OSError):
                    self.chan.send(frames.MONITOR_HOST_STAYS)
            self._close_chan()
            return
        # Taken: a host killed before this point has not taken it, and the forkserver
        # gives it to a new one.
        with contextlib.suppress(OSError):
            self.chan.send(frames.MONITOR_HOST_TOOK)
        if not fds:
            return
        client = socket.socket(fileno=fds[0])
        try:
            request = json.loads(msg)
            bundle = str(request["bundle"])
            cid, log_path = str(request["id"]), str(request.get("log_path") or "")
            request_ns = int(request.get("request_ns") or 0)
        except (ValueError, KeyError, TypeError) as exc:
            with contextlib.suppress(OSError):
                client.sendall(
                    frames.encode_control({"event": "error", "message": str(exc), "kind": "other"})
                )
            client.close()
            return
        view = _ReactorView(self.reactor, self)
        monitor = Monitor(
            self.kernel,
            cid,
            bundle,
            log_path,
            client,
            request_ns,
            reactor=view,  # type: ignore[arg-type] - the reactor's interface
        )
        view.monitor = monitor
        monitor.exec_starter = self.start_exec

        def done(started: bool) -> None:
            if not started:
                if self.monitors.get(bundle) is monitor:
                    del self.monitors[bundle]
                monitor.release()  # its pipes (a process of its own would just exit)
            elif self.stopping:  # a SIGTERM that came while it started
                monitor.kill_container()

        try:
            forked = monitor.begin_async(done)
        except Exception:  # noqa: BLE001 - a start bug fails that start, not the host
            _record_bug(bundle)
            monitor.release()
            client.close()
            return
        if not forked:
            monitor.release()
            return
        # Its bundle's lock is held (a second start of it was refused above): the key is free.
        self.monitors[bundle] = monitor

    def start_exec(self, container: Monitor, client: _Client, raw_spec: dict) -> None:
        """docker exec into one of our containers, on `client` (the connection that
        asked its monitor): its ExecMonitor runs here, on the shared reactor."""
        view = _ReactorView(self.reactor, self)
        try:
            if self.stopping:
                raise RuntimeFailure(f"container {container.container_id} is stopping")
            spec = ExecSpec.checked(raw_spec)
        except (RuntimeFailure, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, RuntimeFailure) else f"invalid exec: {exc}"
            error = frames.encode_control({"event": "error", "message": message})
            with contextlib.suppress(OSError):
                client.sock.settimeout(1.0)  # after what it has not sent yet: whole frames
                client.sock.sendall(bytes(client.out) + error)
            client.sock.close()
            return
        monitor = ExecMonitor(
            self.kernel,
            container.container_id,
            container.bundle,
            spec,
            None,
            reactor=view,  # type: ignore[arg-type] - the reactor's interface
            container=container,
        )
        view.monitor = monitor
        monitor.clients[client.sock.fileno()] = client  # with what it has not sent yet
        key = f"{container.bundle}\0exec\0{id(monitor)}"

        def done(started: bool) -> None:
            if not started:
                if self.monitors.get(key) is monitor:
                    del self.monitors[key]
                monitor.release()
            elif self.stopping:
                monitor.kill_container()

        self.monitors[key] = monitor  # before its fork: a SIGTERM meanwhile finds it
        try:
            forked = monitor.begin_async(done)
        except Exception:  # noqa: BLE001 - an exec bug fails that exec, not the host
            _record_bug(container.bundle)
            forked = False
            for c in list(monitor.clients.values()):
                c.sock.close()
            monitor.clients.clear()
        if not forked:
            del self.monitors[key]
            monitor.release()

    def _close_chan(self) -> None:
        if self.chan is not None:
            self.reactor.forget(self.chan.fileno())
            self.chan.close()
            self.chan = None

    def crashed(self, monitor: Monitor, exc: Exception) -> None:
        _record_bug(monitor.bundle)
        for key, m in list(self.monitors.items()):
            if m is monitor:  # a container's or an exec's (keys differ, see start_exec)
                del self.monitors[key]
        with contextlib.suppress(Exception):
            monitor.crashed(exc)

    def stop_all(self) -> None:
        # Takes no more: a start queued meanwhile goes to a new host (the forkserver
        # sees the channel close instead of an answer).
        self.stopping = True
        self._close_chan()
        for monitor in list(self.monitors.values()):
            monitor.kill_container()

    def serve(self) -> None:
        while self.chan is not None or self.monitors:
            timeouts = [t for m in self.monitors.values() if (t := m.timeout()) is not None]
            self.reactor.poll(min(timeouts) if timeouts else None)
            for key, monitor in list(self.monitors.items()):
                if monitor.drained():
                    del self.monitors[key]
                    try:
                        monitor.finish()
                    except Exception:  # noqa: BLE001 - as above
                        _record_bug(monitor.bundle)
                    monitor.release()


def _record_bug(bundle: str) -> None:
    with contextlib.suppress(OSError), open(os.path.join(bundle, "monitor.err"), "a") as f:
        f.write(traceback.format_exc())


def run_host(kernel: Kernel, chan: socket.socket) -> int:
    """In the freshly forked host process: detach and serve until done."""
    kernel.setsid()
    # The forkserver ignores SIGCHLD to reap monitors; the host waits for its inits.
    kernel.reset_signals([signal.SIGCHLD])
    detach_stdio()
    host = MonitorHost(kernel, chan)
    me = os.getpid()

    def stop(_signum: int, _frame: object) -> None:
        if os.getpid() == me:  # not in a container's init between its fork and exec
            host.stop_all()

    kernel.set_signal_handler(signal.SIGTERM, stop)
    host.serve()
    return 0
