"""The daemon-side API of the runtime (asyncio): start containers, talk to their monitors.

    launcher = Launcher(run_dir)
    await launcher.start()                       # the forkserver
    link = await launcher.run(id, bundle, log_path=...)   # returns once exec'd
    async for stream, data in link.frames(): ...
    record = await link.wait()

After a daemon restart, `reattach` connects to a monitor that is still
running; when it is gone, `read_exit` tells how the container ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import AsyncIterator

from dockyard.errors import Conflict, RuntimeFailure, Unavailable
from dockyard.runtime import frames
from dockyard.runtime.rfc3339 import now_rfc3339nano
from dockyard.runtime.spec import ExecSpec
from dockyard.runtime.state import ExitRecord, read_exit, read_state

__all__ = ["ExecSpec", "ExitRecord", "Launcher", "MonitorLink", "read_exit", "read_state"]

log = logging.getLogger("dockyard.runtime")

MAX_PENDING_OUTPUT = 16 * 1024 * 1024
# A container link whose stream went bad reconnects to the monitor's socket
# (the container is still running) rather than reporting an exit nobody saw.
MAX_RECONNECTS = 3
_UCRED = struct.Struct("3i")
log = logging.getLogger("dockyard.runtime")
_SRC_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class MonitorLink:
    """One connection to a container's monitor."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        bundle_dir: str,
        *,
        exit_file: bool = True,
        exec_switch: bool = False,
    ) -> None:
        self.pid = 0
        self.monitor_pid = 0
        self.started_at = ""
        self._reader = reader
        self._writer = writer
        self._bundle = bundle_dir
        self._exit_file = exit_file  # exit.json is the container's, not an exec's
        loop = asyncio.get_running_loop()
        self._hello: asyncio.Future[dict] = loop.create_future()
        self._exit: asyncio.Future[ExitRecord] = loop.create_future()
        self._pending: deque[tuple[int, bytes]] = deque()
        self._pending_bytes = 0
        self._ended = False
        self._wakeup = asyncio.Event()
        self._frames_taken = False
        self.dropped_bytes = 0  # output the consumer of frames() was too slow for
        self._requests: dict[int, asyncio.Future[dict]] = {}
        self._next_req = 0
        self._reconnects = 0
        # A connection to a container's monitor that becomes an exec's (Launcher.exec):
        # the container's output that reaches it before the exec's "started" is not
        # the exec's, and is dropped.
        self._exec_started: asyncio.Future[dict] | None = (
            loop.create_future() if exec_switch else None
        )
        self._task = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while await self._read_frame() or await self._reconnect():
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._closed_by_monitor()

    async def _read_frame(self) -> bool:
        """Read and act on one frame; False if the stream cannot go on."""
        header = await self._reader.readexactly(frames.HEADER.size)
        stream, length = frames.HEADER.unpack(header)
        limit = frames.MAX_CONTROL_FRAME if stream == frames.CONTROL else frames.MAX_OUTPUT_FRAME
        if length > limit:
            # Not read, not allocated: the stream is out of step from here on.
            self._warn(f"a {length}-byte frame (stream {stream}, limit {limit}): link closed")
            return False
        payload = await self._reader.readexactly(length) if length else b""
        if stream == frames.CONTROL:
            try:
                event = frames.parse_event(payload)
            except ValueError as exc:
                self._warn(f"a malformed control frame ({exc}): dropped")
                return True
            self._event(event)
        elif stream in (frames.STDOUT, frames.STDERR):
            self._push(stream, payload)
        else:
            self._warn(f"a frame on unknown stream {stream}: dropped")
        return True

    def _warn(self, what: str) -> None:
        # One line, whatever the monitor sent (messages carry no payload bytes).
        log.warning(
            "monitor of %s sent %s", os.path.basename(self._bundle), what.replace("\n", " ")
        )

    async def _reconnect(self) -> bool:
        """After a protocol error on a container's link: a fresh connection to its monitor."""
        if not self._exit_file or self._reconnects >= MAX_RECONNECTS:
            return False
        self._reconnects += 1
        self._writer.close()
        connection = await _connect_monitor(self._bundle)
        if connection is None:
            return False
        self._reader, self._writer = connection
        return True

    def _event(self, event: dict) -> None:
        kind = event.get("event")
        if kind in ("started", "state"):
            self.pid = event["pid"]
            self.monitor_pid = event["monitor_pid"]
            self.started_at = event["started_at"]
        if kind in ("started", "state", "error") and not self._hello.done():
            self._hello.set_result(event)
        elif kind in ("started", "error") and self._switching():
            assert self._exec_started is not None
            self._exec_started.set_result(event)
        elif kind == "reply":
            answer = self._requests.get(event["req"])
            if answer is not None and not answer.done():
                answer.set_result(event)
        elif kind == "log-error":
            log.error(
                "container %s: log entries dropped: %s (%s so far)",
                os.path.basename(self._bundle)[:12],
                event["error"][:200].replace("\n", " "),
                event["dropped"],
            )
        elif kind == "exit" and not self._exit.done():
            self._exit.set_result(
                ExitRecord(
                    exit_code=event["exit_code"],
                    finished_at=event["finished_at"],
                    oom_killed=event.get("oom_killed", False),
                    error=event.get("error", ""),
                )
            )

    def _switching(self) -> bool:
        """Between the connection and its exec's start (see _exec_started)."""
        return self._exec_started is not None and not self._exec_started.done()

    def _closed_by_monitor(self) -> None:
        if self._switching():
            assert self._exec_started is not None
            self._exec_started.set_result({"event": "gone"})
        for answer in self._requests.values():
            if not answer.done():
                answer.set_result({"ok": False, "error": "the container's monitor is gone"})
        if not self._hello.done():
            self._hello.set_result({"event": "gone"})
        if not self._exit.done():
            # The monitor vanished without an exit event: trust exit.json if it got that far.
            record = (read_exit(self._bundle) if self._exit_file else None) or ExitRecord(
                exit_code=255,
                finished_at=now_rfc3339nano(),
                error="container monitor exited unexpectedly",
            )
            self._exit.set_result(record)
        self._ended = True
        self._wakeup.set()

    def _push(self, stream: int, payload: bytes) -> None:
        if self._switching():
            return  # the container's output, before its exec took this connection
        # Read the monitor as fast as it writes, so it never has to drop this
        # link; if nobody consumes frames(), keep only the newest output (the
        # json log has all of it).
        self._pending.append((stream, payload))
        self._pending_bytes += len(payload)
        while self._pending_bytes > MAX_PENDING_OUTPUT and len(self._pending) > 1:
            _, old = self._pending.popleft()
            self._pending_bytes -= len(old)
            self.dropped_bytes += len(old)
        self._wakeup.set()

    async def _hello_event(self) -> dict:
        return await asyncio.shield(self._hello)

    async def frames(self) -> AsyncIterator[tuple[int, bytes]]:
        """(1=stdout | 2=stderr, data) from the link's creation until the container exits."""
        if self._frames_taken:
            raise RuntimeError("frames() may be called once per link")
        self._frames_taken = True
        while True:
            while self._pending:
                stream, payload = self._pending.popleft()
                self._pending_bytes -= len(payload)
                yield stream, payload
            if self._ended:
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _send(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise RuntimeFailure("the container's monitor is not connected")
        self._writer.write(data)
        try:
            await self._writer.drain()
        except ConnectionError as exc:
            raise RuntimeFailure(f"the container's monitor is gone: {exc}") from None

    async def write_stdin(self, data: bytes) -> None:
        if data:
            await self._send(frames.encode(frames.STDIN, data))

    async def close_stdin(self) -> None:
        await self._send(frames.encode_control({"cmd": "close_stdin"}))

    async def resize(self, height: int, width: int) -> None:
        await self._send(frames.encode_control({"cmd": "resize", "height": height, "width": width}))

    async def kill(self, signum: int) -> None:
        await self._send(frames.encode_control({"cmd": "kill", "signal": int(signum)}))

    async def pause(self) -> None:
        """docker pause: freeze every process of the container (cgroup freezer)."""
        await self._ask({"cmd": "pause"})

    async def resume(self) -> None:
        """docker unpause."""
        await self._ask({"cmd": "resume"})

    async def stats(self) -> dict:
        """Raw cgroup counters: {"memory": {...}, "cpu": {...}, "pids": {...}}."""
        return dict((await self._ask({"cmd": "stats"})).get("stats", {}))

    async def _ask(self, cmd: dict) -> dict:
        self._next_req += 1
        req = self._next_req
        answer: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._requests[req] = answer
        try:
            await self._send(frames.encode_control({**cmd, "req": req}))
            reply = await answer
        finally:
            self._requests.pop(req, None)
        if not reply.get("ok"):
            raise Conflict(str(reply.get("error", "the container's monitor refused")))
        return reply

    async def wait(self) -> ExitRecord:
        return await asyncio.shield(self._exit)

    async def close(self) -> None:
        """Drop this connection; the container and its monitor keep running."""
        self._task.cancel()
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if not self._exit.done():
            self._exit.cancel()
        if not self._hello.done():
            self._hello.cancel()
        if self._switching():
            assert self._exec_started is not None
            self._exec_started.cancel()


def _compile_default_seccomp() -> None:
    from dockyard.runtime.seccomp import compile_oci, default_profile
    from dockyard.runtime.spec import DEFAULT_CAPABILITIES

    compile_oci(default_profile(DEFAULT_CAPABILITIES))


class Launcher:
    def __init__(self, run_dir: str, python: str = sys.executable) -> None:
        self.run_dir = run_dir
        self.python = python
        self._proc: asyncio.subprocess.Process | None = None
        self._ctl: socket.socket | None = None
        self._lock = asyncio.Lock()

    @property
    def forkserver_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Start the forkserver and wait until it has imported everything."""
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC_DIR, env.get("PYTHONPATH")) if p)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "dockyard.runtime.forkserver",
                str(theirs.fileno()),
                str(os.getpid()),
                # Not read: it names the data root in the argv of the forkserver and of
                # every monitor it forks (ps, leak checks, cleanup of a killed daemon).
                os.path.abspath(self.run_dir),
                pass_fds=[theirs.fileno()],
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # a ^C to the daemon's terminal is the daemon's business
                cwd=self.run_dir,
                env=env,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        # Docker's default seccomp program, compiled while the forkserver imports (the
        # first start then only looks it up).
        prewarm = asyncio.create_task(asyncio.to_thread(_compile_default_seccomp))
        try:
            ready = await asyncio.wait_for(loop.sock_recv(ours, 16), timeout=30)
        except TimeoutError:
            ready = b""
        await prewarm
        if ready != frames.FORKSERVER_READY:
            ours.close()
            await self._reap()
            raise Unavailable("the runtime's forkserver did not start")
        self._ctl = ours

    async def close(self) -> None:
        """Stop the forkserver; running containers and their monitors go on."""
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        await self._reap()

    async def _reap(self) -> None:
        if self._proc is None:
            return
        try:
            await asyncio.wait_for(self._proc.wait(), timeout=5)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        self._proc = None

    async def _request(self, message: bytes, fd: int) -> None:
        async with self._lock:
            if self._ctl is None or (self._proc is not None and self._proc.returncode is not None):
                # The forkserver died (or was never started): start a new one.
                await self.close()
                await self.start()
            assert self._ctl is not None
            ctl = self._ctl
            loop = asyncio.get_running_loop()
            while True:
                try:
                    socket.send_fds(ctl, [message], [fd])
                    return
                except BlockingIOError:
                    ready = loop.create_future()
                    loop.add_writer(ctl, ready.set_result, None)
                    try:
                        await ready
                    finally:
                        loop.remove_writer(ctl)
                except (BrokenPipeError, ConnectionResetError):
                    await self.close()
                    await self.start()
                    assert self._ctl is not None
                    ctl = self._ctl

    async def run(
        self, container_id: str, bundle_dir: str, *, log_path: str, runtime_path: str = ""
    ) -> MonitorLink:
        """Start the container of <bundle>/config.json; return once its process has exec'd.

        With `runtime_path` (runc, crun), that runtime creates and starts it under the
        monitor (runtime/oci_monitor.py), its state under <run_dir>/runtimes/<name>.
        Raises RuntimeFailure (kind "not-found", "permission" or "other") if it could not start.
        """
        request: dict = {
            "id": container_id,
            "bundle": os.path.abspath(bundle_dir),
            "log_path": log_path,
            "request_ns": time.monotonic_ns(),
        }
        if runtime_path:
            root = os.path.join(self.run_dir, "runtimes", os.path.basename(runtime_path))
            request["runtime"] = {"path": runtime_path, "root": root}
        return await self._start_monitor(request, bundle_dir)

    async def _start_monitor(
        self, request: dict, bundle_dir: str, *, exit_file: bool = True
    ) -> MonitorLink:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            await self._request(json.dumps(request).encode(), theirs.fileno())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await _open_link(sock=ours)
        link = MonitorLink(reader, writer, bundle_dir, exit_file=exit_file)
        event = await link._hello_event()
        if event.get("event") == "started":
            return link
        await link.close()
        if event.get("event") == "error":
            raise RuntimeFailure(str(event.get("message")), str(event.get("kind", "other")))
        raise RuntimeFailure("the container's monitor exited before starting it", "other")

    async def exec(self, container_id: str, bundle_dir: str, spec: ExecSpec) -> MonitorLink:
        """Run a process inside the running container (docker exec).

        Returns once it has exec'd; the link carries its output and its exit
        code (wait()); kill() signals it. Raises RuntimeFailure as run() does.
        """
        link = await self._exec_beside_container(bundle_dir, spec)
        if link is not None:
            return link
        request = {
            "kind": "exec",
            "id": container_id,
            "bundle": os.path.abspath(bundle_dir),
            "exec": spec.to_json(),
        }
        return await self._start_monitor(request, bundle_dir, exit_file=False)

    async def _exec_beside_container(self, bundle_dir: str, spec: ExecSpec) -> MonitorLink | None:
        """The exec run by the monitor host, asked through the container's monitor
        socket: no forkserver round, no interpreter forked, no file read. None where
        that monitor cannot (it runs another runtime, or is from before): the caller
        forks an exec monitor then."""
        connection = await _connect_monitor(bundle_dir)
        if connection is None:
            return None  # no monitor: the forkserver's exec monitor says what is wrong
        link = MonitorLink(*connection, bundle_dir, exit_file=False, exec_switch=True)
        hello = await link._hello_event()
        if hello.get("event") != "state" or not hello.get("exec"):
            await link.close()
            return None
        try:
            await link._send(frames.encode_control({"cmd": "exec", "exec": spec.to_json()}))
            assert link._exec_started is not None
            event = await asyncio.shield(link._exec_started)
        except BaseException:
            await link.close()
            raise
        if event.get("event") == "started":
            return link
        await link.close()
        if event.get("event") == "error":
            raise RuntimeFailure(str(event.get("message")), str(event.get("kind", "other")))
        raise RuntimeFailure("the container's monitor ended before the exec started", "other")

    def update_resources(self, bundle_dir: str, resources: dict) -> list[str]:
        """docker update on a running container: its cgroups get the new limits now."""
        from dockyard.kernel.linux import LinuxKernel
        from dockyard.runtime.bundle import load_config
        from dockyard.runtime.cgroups import update_running

        return update_running(LinuxKernel(), load_config(bundle_dir), resources)

    async def reattach(self, container_id: str, bundle_dir: str) -> MonitorLink | None:
        """Connect to the monitor of a running container; None if it is gone."""
        connection = await _connect_monitor(bundle_dir)
        if connection is None:
            return None
        reader, writer = connection
        link = MonitorLink(reader, writer, bundle_dir)
        event = await link._hello_event()
        if event.get("event") == "state":
            return link
        await link.close()
        return None


class _LinkProtocol(asyncio.StreamReaderProtocol):
    """A monitor that has sent its exit event and closed makes our next command
    fail (EPIPE, or a reset). asyncio then stops reading and hands the reader
    the error, which drops what was buffered: the exit event was lost and an
    exec's code became 255. So on a connection error, what the kernel still
    holds for us is read, and the stream ends as at EOF."""

    def __init__(self, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(reader, loop=loop)
        self._link_reader = reader
        self._link_fd = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._link_fd = transport.get_extra_info("socket").fileno()
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, ConnectionError):
            exc = None
            left = MAX_PENDING_OUTPUT  # the socket is still open here (closed after this)
            while left > 0:
                try:
                    data = os.read(self._link_fd, min(left, 65536))
                except OSError:  # EAGAIN: all read; or the reset itself
                    break
                if not data:
                    break
                self._link_reader.feed_data(data)
                left -= len(data)
        super().connection_lost(exc)


async def _open_link(
    path: str | None = None, *, sock: socket.socket | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio.open_unix_connection, with _LinkProtocol."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    protocol = _LinkProtocol(reader, loop)
    transport, _ = await loop.create_unix_connection(lambda: protocol, path, sock=sock)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def _connect_monitor(
    bundle_dir: str,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection to the monitor listening in <bundle_dir>; None if none does."""
    try:
        dir_fd = os.open(bundle_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        reader, writer = await _open_link(frames.socket_path(dir_fd))
    except OSError:
        return None  # no monitor, or one that is gone (a killed monitor leaves its socket file)
    finally:
        os.close(dir_fd)
    sock = writer.get_extra_info("socket")
    _pid, uid, _gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    if uid != 0:
        log.warning("%s is not a monitor's socket (owner uid %d): ignored", bundle_dir, uid)
        writer.close()
        return None
    return reader, writer
