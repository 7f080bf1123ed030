"""The per-container monitor: starts the container, holds its stdio, logs, reports the exit.

A Monitor per container, run by the monitor host (monitor_host.py: one
detached process for many containers, so it outlives the daemon), or in a
process of its own forked by the forkserver (exec sessions, other runtimes).
It:

- creates the container's cgroups, unshares a pid namespace for its child and
  forks the container init (container_init.py), then waits on the O_CLOEXEC
  status socket: EOF means exec succeeded, a message means it failed;
- copies the container's stdout/stderr (pipes, or a pty) to the json-file log
  and to every connected client, framed (frames.py);
- serves clients on the path socket <bundle>/monitor.sock (mode 0600, root
  peers only; never an abstract socket, which a --network host container
  could reach): stdin, close stdin, resize, kill;
- when the init exits: drains the output, removes the cgroups, writes
  exit.json, sends the exit event to the clients and exits.

Single-threaded, on selectors (epoll), no asyncio: it must be cheap to fork.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import time
from collections.abc import Callable
from time import perf_counter_ns

from dockyard.errors import DockyardError, KernelError, RuntimeFailure
from dockyard.kernel import flags as K
from dockyard.kernel.interface import Kernel
from dockyard.kernel.trace import TRACING, TracingKernel, plain_value
from dockyard.runtime import frames
from dockyard.runtime.atomic_write import write_atomic
from dockyard.runtime.bundle import ContainerConfig, load_config
from dockyard.runtime.cgroups import (
    available_controllers,
    create_cgroups,
    oom_killed,
    read_stats,
    remove_cgroups,
    set_frozen,
)
from dockyard.runtime.container_init import child_main, decode_trace
from dockyard.runtime.jsonlog import JsonFileLog
from dockyard.runtime.rfc3339 import now_rfc3339nano
from dockyard.runtime.state import (
    EXIT_FILE,
    STATE_FILE,
    TRACE_FILE,
    ExitRecord,
    reserve_exit_slot,
    write_exit,
    write_json,
)

# A client this far behind misses output frames (the log has them) rather than
# stalling the container; control frames (the exit event) always get through.
MAX_CLIENT_BACKLOG = 8 * 1024 * 1024
# Stdin buffered for a container that does not read it: beyond this, stop
# reading from the client that sends it (backpressure, as a pipe would).
MAX_STDIN_BACKLOG = 1024 * 1024
DRAIN_TIMEOUT = 2.0  # after the init exits, how long to wait for the pipes' EOF
LOG_ERROR_INTERVAL = 10.0  # at most one "log entries dropped" report this often
_UCRED = struct.Struct("3i")


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = frames.FrameDecoder()
        self.out = bytearray()
        self.paused = False  # not read while the container's stdin is backed up
        self.dropped = 0  # output bytes this client missed


class _Reactor:
    """epoll with separate read/write callbacks per fd (a pty master is both)."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self._read: dict[int, Callable[[], None]] = {}
        self._write: dict[int, Callable[[], None]] = {}

    def _update(self, fd: int) -> None:
        mask = (selectors.EVENT_READ if fd in self._read else 0) | (
            selectors.EVENT_WRITE if fd in self._write else 0
        )
        registered = fd in self.sel.get_map()
        if mask and registered:
            self.sel.modify(fd, mask)
        elif mask:
            self.sel.register(fd, mask)
        elif registered:
            self.sel.unregister(fd)

    def on_read(self, fd: int, cb: Callable[[], None] | None) -> None:
        if cb is None:
            self._read.pop(fd, None)
        else:
            self._read[fd] = cb
        self._update(fd)

    def on_write(self, fd: int, cb: Callable[[], None] | None) -> None:
        if cb is None:
            self._write.pop(fd, None)
        else:
            self._write[fd] = cb
        self._update(fd)

    def forget(self, fd: int) -> None:
        self._read.pop(fd, None)
        self._write.pop(fd, None)
        self._update(fd)

    def poll(self, timeout: float | None) -> None:
        for key, mask in self.sel.select(timeout):
            fd = key.fd
            if mask & selectors.EVENT_READ and fd in self._read:
                self._read[fd]()
            if mask & selectors.EVENT_WRITE and fd in self._write:
                self._write[fd]()


class Monitor:
    def __init__(
        self,
        kernel: Kernel,
        container_id: str,
        bundle: str,
        log_path: str,
        first_client: socket.socket | None,
        request_ns: int = 0,
        reactor: _Reactor | None = None,
    ) -> None:
        self.kernel = kernel
        self.container_id = container_id
        self.bundle = bundle
        self.log_path = log_path
        self.request_ns = request_ns
        # Its own, or the monitor host's shared one (monitor_host.py).
        self.reactor = reactor if reactor is not None else _Reactor()
        self.clients: dict[int, _Client] = {}
        if first_client is not None:
            first_client.setblocking(False)
            self.clients[first_client.fileno()] = _Client(first_client)
        self.pid = 0
        self.started_at = ""
        self.cfg: ContainerConfig | None = None
        self.controllers: list[str] = []
        self.listener: socket.socket | None = None
        self.bundle_fd = -1  # holds the bundle's lock while this monitor serves
        self.log: JsonFileLog | None = None
        self.outputs: dict[int, str] = {}  # fd -> "stdout" | "stderr"
        self.stdin_fd = -1
        self.stdin_buf = bytearray()
        self.stdin_close_pending = False
        self.pty_master = -1
        self.exit_status: int | None = None
        self.t_fork = 0
        self.owns_cgroups = False
        self.paused = False
        self.log_error_at = -LOG_ERROR_INTERVAL
        self.drain_deadline: float | None = None
        self.host_pid = os.getpid()  # once the init exited
        # In the monitor host, the container's pid namespace is made for one fork
        # only: the host's next child (another container's init) must not land in it.
        self.shared = reactor is not None
        # Set by the monitor host: runs an exec for a client that asks ("exec" command).
        self.exec_starter: Callable[[Monitor, _Client, dict], None] | None = None

    # --- start -----------------------------------------------------------------
    def run(self) -> int:
        """Start the container and serve it until it exits; the process exit code."""
        if not self.begin():
            return 1
        self._serve()
        return 0

    def begin(self) -> bool:
        """Start the container and register its fds with the reactor; False if it
        did not start (the clients were told why, nothing is left behind)."""
        t0 = perf_counter_ns()
        tracer = TracingKernel(self.kernel) if TRACING else self.kernel
        try:
            init_report = self._start(tracer)
        except (DockyardError, OSError) as exc:
            self._start_error(exc)
            return False
        return self._started(tracer, init_report, t0)

    def begin_async(self, done: Callable[[bool], None]) -> bool:
        """begin() for the monitor host: the init's report is read from the reactor,
        so other containers are served while this one's init sets up. False if it
        failed before the fork (as begin); else done(started) is called later."""
        t0 = perf_counter_ns()
        tracer = TracingKernel(self.kernel) if TRACING else self.kernel
        try:
            status = self._spawn(tracer)
        except (DockyardError, OSError) as exc:
            self._start_error(exc)
            return False
        status.setblocking(False)
        report: dict = {}

        def readable() -> None:
            if not _read_status_step(status, report):
                return  # more to come: the init has not exec'd yet
            self.reactor.forget(status.fileno())
            status.close()
            try:
                settled = self._settle(report)
            except (DockyardError, OSError) as exc:
                self._start_error(exc)
                done(False)
                return
            done(self._started(tracer, settled, t0))

        self.reactor.on_read(status.fileno(), readable)
        return True

    def _start_error(self, exc: DockyardError | OSError) -> None:
        if isinstance(exc, DockyardError):
            kind = exc.kind if isinstance(exc, RuntimeFailure) else "other"
            self._fail_start(exc.message, kind)
        else:
            self._fail_start(f"container monitor: {exc}", "other")

    def _started(self, tracer: Kernel, init_report: dict, t0: int) -> bool:
        error = init_report.get("error")
        if error is not None:
            self._fail_start(str(error), str(init_report.get("kind", "other")))
            return False
        t_started = perf_counter_ns()
        self.started_at = now_rfc3339nano()
        pidfd = self.kernel.pidfd_open(self.pid)
        self._broadcast_control(self._state_event("started"))
        self.reactor.on_read(pidfd, lambda: self._on_exit(pidfd))
        self._after_started(tracer, init_report, t0, t_started)
        self._register()
        return True

    def _start(self, tracer: Kernel) -> dict:
        status = self._spawn(tracer)
        report = _read_status(status)
        status.close()
        return self._settle(report)

    def _spawn(self, tracer: Kernel) -> socket.socket:
        """Prepare and fork the init; the socket its status comes on (EOF: exec'd)."""
        cfg = self._prepare(tracer)
        stdio, child_fds = self._make_stdio(cfg)
        status, child_status = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._enter_pid_namespace(tracer)
        self.t_fork = perf_counter_ns()
        try:
            pid = tracer.fork()
        finally:
            if self.shared and os.getpid() == self.host_pid:
                self._leave_pid_namespace(tracer)
        if pid == 0:
            self._child(cfg, stdio, child_status)  # never returns
            os._exit(127)
        self.pid = pid
        for fd in child_fds:
            os.close(fd)
        child_status.close()
        return status

    def _settle(self, report: dict) -> dict:
        """The init's report read to EOF: its pty, or its failure (reaped)."""
        assert self.cfg is not None
        cfg, pid = self.cfg, self.pid
        if "pty_fd" in report:
            master = report.pop("pty_fd")
            os.set_blocking(master, False)
            self.pty_master = master
            self.outputs[master] = "stdout"
            if cfg.open_stdin:
                self.stdin_fd = master
        if report.get("error") is not None or "trace" not in report:
            self.kernel.waitpid(pid, 0)
            if "trace" not in report and report.get("error") is None:
                report["error"] = "container init exited before exec"
                report["kind"] = "other"
        return report

    # The steps a container start and an exec differ in (see exec_monitor.py).
    def _prepare(self, tracer: Kernel) -> ContainerConfig:
        self.cfg = cfg = load_config(self.bundle)
        self.listener = self._listen()
        # Holding the bundle's lock proves no other monitor runs this container:
        # what a previous run left is stale now.
        for name in (EXIT_FILE, STATE_FILE):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.bundle, name))
        self.controllers = available_controllers(tracer, cfg)
        create_cgroups(tracer, cfg, self.controllers)
        self.owns_cgroups = True
        self._open_log(cfg)
        return cfg

    def _open_log(self, cfg: ContainerConfig) -> None:
        """The json-file log, rotated as the engine's annotations say (engine/logconfig.py)."""
        if self.log_path:
            notes = cfg.annotations or {}
            self.log = JsonFileLog(
                self.log_path,
                max_size=int(notes.get("org.dockyard.log.max-size", "0") or 0),
                max_file=int(notes.get("org.dockyard.log.max-file", "1") or 1),
                compress=notes.get("org.dockyard.log.compress") == "true",
                attrs=_log_attrs(notes.get("org.dockyard.log.attrs")),
            )

    def _enter_pid_namespace(self, tracer: Kernel) -> None:
        # A new pid namespace for the next child only: it becomes PID 1 (--pid host:
        # none; --pid container:<id>: that container's).
        pid_mode = self.cfg.pid_mode if self.cfg is not None else "private"
        if pid_mode == "private":
            tracer.unshare(K.CLONE_NEWPID)
        elif pid_mode != "host":
            tracer.setns(pid_mode, K.CLONE_NEWPID)

    def _leave_pid_namespace(self, tracer: Kernel) -> None:
        # setns to our own (active) pid namespace: children are born in it again.
        if self.cfg is not None and self.cfg.pid_mode != "host":
            tracer.setns("/proc/self/ns/pid", K.CLONE_NEWPID)

    def _child(
        self, cfg: ContainerConfig, stdio: tuple[int, int, int], status: socket.socket
    ) -> None:
        if self.shared:
            # The host's SIGTERM handler stops every container: not this one's business.
            self.kernel.reset_signals([signal.SIGTERM])
        child_main(self.kernel, cfg, stdio, self.controllers, status)

    def _after_started(self, tracer: Kernel, report: dict, t0: int, t_started: int) -> None:
        # Off the critical path: the caller already knows the container started.
        # Both describe a monitor that a reboot ends: no fsync. A full disk loses them
        # (the daemon knows the state from the link), not the container.
        with contextlib.suppress(OSError):
            reserve_exit_slot(self.bundle)  # first: the one that matters on a full disk
            write_json(self.bundle, STATE_FILE, self._state_event("state"), durable=False)
            if isinstance(tracer, TracingKernel):
                self._write_trace(tracer, report, t0, t_started)

    def _listen(self) -> socket.socket:
        fd = os.open(self.bundle, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # One monitor per container: an flock on the bundle, held until _stop_listening.
            locked = self.kernel.try_lock(fd)
        except KernelError:
            os.close(fd)
            raise
        if not locked:
            os.close(fd)
            raise RuntimeFailure(f"container {self.container_id} is already running")
        self.bundle_fd = fd
        with contextlib.suppress(FileNotFoundError):
            os.unlink(frames.MONITOR_SOCKET, dir_fd=fd)  # left by a monitor that was killed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        old_umask = self.kernel.umask(0o177)  # born 0600: root's alone from the first instant
        try:
            sock.bind(frames.socket_path(fd))
        except OSError as exc:
            sock.close()
            raise KernelError(
                "bind", (self.bundle, frames.MONITOR_SOCKET), exc.errno or 0
            ) from None
        finally:
            self.kernel.umask(old_umask)
        sock.listen(16)
        return sock

    def _stop_listening(self) -> None:
        """No new clients; the lock goes with the socket, so the next start may begin."""
        if self.listener is not None:
            # Forgotten before closed: in the monitor host the fd number is reused.
            self.reactor.forget(self.listener.fileno())
            self.listener.close()
            self.listener = None
        if self.bundle_fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(frames.MONITOR_SOCKET, dir_fd=self.bundle_fd)
            os.close(self.bundle_fd)
            self.bundle_fd = -1

    def _make_stdio(self, cfg: ContainerConfig) -> tuple[tuple[int, int, int], list[int]]:
        """The child's (stdin, stdout, stderr) and the fds to close in the monitor after fork."""
        if cfg.terminal:
            return (-1, -1, -1), []  # the init opens a pty in its own devpts and sends the master
        out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        err_r, err_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.set_blocking(out_w, True)
        os.set_blocking(err_w, True)
        self.outputs[out_r] = "stdout"
        self.outputs[err_r] = "stderr"
        if cfg.open_stdin:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(in_w, False)
            self.stdin_fd = in_w
            return (in_r, out_w, err_w), [in_r, out_w, err_w]
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        return (null, out_w, err_w), [null, out_w, err_w]

    def _fail_start(self, message: str, kind: str) -> None:
        self._broadcast_control({"event": "error", "message": message, "kind": kind})
        if self.cfg is not None and self.owns_cgroups:
            with contextlib.suppress(KernelError):
                remove_cgroups(self.kernel, self.cfg, self.controllers)
        if self.log is not None:
            self.log.close()
        self._stop_listening()
        self._flush_clients_and_close()

    def kill_container(self, signum: int = signal.SIGKILL) -> None:
        if self.pid and self.exit_status is None:
            with contextlib.suppress(KernelError):
                self.kernel.kill(self.pid, signum)
            if self.paused and self.cfg is not None:
                # A frozen task handles no signal, not even SIGKILL, until thawed.
                with contextlib.suppress(DockyardError):
                    set_frozen(self.kernel, self.cfg, self.controllers, False)
                self.paused = False

    def _state_event(self, event: str) -> dict:
        state = {
            "event": event,
            "pid": self.pid,
            "monitor_pid": os.getpid(),
            "started_at": self.started_at,
        }
        if self.exec_starter is not None:
            state["exec"] = True  # takes the "exec" command
        return state

    def _write_trace(self, tracer: TracingKernel, report: dict, t0: int, t_started: int) -> None:
        phases = {
            "monitor_setup_ns": self.t_fork - t0,
            "init_until_exec_ns": report.get("init_ns", 0),
            "fork_to_started_ns": t_started - self.t_fork,
            "monitor_total_ns": t_started - t0,
        }
        if self.request_ns:
            phases["request_to_monitor_ns"] = t0 - self.request_ns
            phases["request_to_started_ns"] = t_started - self.request_ns
        # The same instants on CLOCK_MONOTONIC, for a timeline of every process of the
        # start (dockyard trace --format perfetto).
        marks = {
            "request": self.request_ns,
            "monitor_start": t0,
            "fork": self.t_fork,
            "init_start": report.get("init_start", 0),
            "started": t_started,
        }
        pids = {"monitor": os.getpid(), "init": self.pid}
        # The calls as recorded, (call, args, ns, start) arrays by process: dumped as
        # they are, a quarter of the cost of one object per call (start_trace.py
        # reads them back). Written after the start is reported, but while the
        # monitor is busy with it an exit waits.
        calls = {"monitor": tracer.calls, "init": report.get("trace", [])}
        trace = {"calls": calls, "phases": phases, "marks": marks, "pids": pids}
        data = json.dumps(trace, separators=(",", ":"), default=plain_value)
        write_atomic(os.path.join(self.bundle, TRACE_FILE), data.encode(), durable=False)

    # --- serving ------------------------------------------------------------------
    def _register(self) -> None:
        if self.listener is not None:
            self.reactor.on_read(self.listener.fileno(), self._accept)
        for fd in self.clients:
            self.reactor.on_read(fd, lambda fd=fd: self._client_readable(fd))
        for fd in self.outputs:
            self.reactor.on_read(fd, lambda fd=fd: self._output_readable(fd))

    def _serve(self) -> None:
        error = ""
        try:
            self._loop()
        except Exception as exc:  # noqa: BLE001 - a monitor bug must still end in exit.json and no leftovers
            error = f"container monitor failed: {exc!r}"
            self.kill_container()
            if self.exit_status is None:
                _, self.exit_status = self.kernel.waitpid(self.pid, 0)
        self._finish(error)

    def _loop(self) -> None:
        while not self.drained():
            self.reactor.poll(self.timeout())

    def drained(self) -> bool:
        """The init has exited and its output is all read (or DRAIN_TIMEOUT passed)."""
        if self.exit_status is None:
            return False
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + DRAIN_TIMEOUT
        return not self.outputs or time.monotonic() >= self.drain_deadline

    def timeout(self) -> float | None:
        """How long the reactor may wait, as far as this container is concerned."""
        if self.exit_status is None:
            return None
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + DRAIN_TIMEOUT
        return max(0.0, self.drain_deadline - time.monotonic())

    def crashed(self, exc: BaseException) -> None:
        """A bug in one of this container's callbacks (in the monitor host): end this
        container the way _serve does, leaving every other one alone."""
        self.kill_container()
        if self.exit_status is None:
            with contextlib.suppress(KernelError):
                _, self.exit_status = self.kernel.waitpid(self.pid, 0)
        if self.exit_status is None:
            self.exit_status = 255 << 8
        self._finish(f"container monitor failed: {exc!r}")
        self.release()

    def release(self) -> None:
        """Close what the container left open (output not drained in time, stdin)."""
        # (A pty master is one of these while open; once closed, its number may be
        # another container's already.)
        for fd in {*self.outputs, self.stdin_fd} - {-1}:
            self.reactor.forget(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        self.outputs.clear()
        self.stdin_fd = self.pty_master = -1

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        _pid, uid, _gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        )
        if uid != 0:
            sock.close()
            return
        sock.setblocking(False)
        client = _Client(sock)
        fd = sock.fileno()
        self.clients[fd] = client
        self.reactor.on_read(fd, lambda: self._client_readable(fd))
        self._send(client, frames.encode_control(self._state_event("state")))

    def _client_readable(self, fd: int) -> None:
        client = self.clients.get(fd)
        if client is None:
            return
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        try:
            received = client.decoder.feed(data)
        except ValueError:
            self._drop(client)
            return
        for stream, payload in received:
            if fd not in self.clients:
                return  # it became an exec's connection (_exec): nothing more of it is ours
            if stream == frames.STDIN:
                self._stdin_data(payload)
                if len(self.stdin_buf) > MAX_STDIN_BACKLOG:
                    client.paused = True
                    self.reactor.on_read(fd, None)
            elif stream == frames.CONTROL:
                # A malformed command from one client must not stop the monitor.
                with contextlib.suppress(ValueError, TypeError, KeyError, OverflowError):
                    cmd = json.loads(payload)
                    if isinstance(cmd, dict):
                        self._command(client, cmd)

    def _command(self, client: _Client, cmd: dict) -> None:
        name = cmd.get("cmd")
        if name == "close_stdin":
            if self.stdin_fd == self.pty_master and self.pty_master >= 0:
                self._stdin_data(b"\x04")  # a tty has no half-close: send EOF (^D)
            else:
                self.stdin_close_pending = True
                self._stdin_flush()
        elif name == "resize" and self.pty_master >= 0:
            with contextlib.suppress(KernelError):
                self.kernel.set_winsize(self.pty_master, int(cmd["height"]), int(cmd["width"]))
        elif name == "kill" and self.exit_status is None:
            # If it is already gone, the exit event follows anyway.
            self.kill_container(int(cmd.get("signal", signal.SIGKILL)))
        elif name in ("pause", "resume", "stats"):
            self._request(client, cmd)
        elif name == "exec":
            self._exec(client, cmd)

    def _exec(self, client: _Client, cmd: dict) -> None:
        """docker exec: this connection becomes the exec's (its monitor runs beside this
        one in the host); its output from here on is the exec's, not the container's."""
        spec = cmd.get("exec")
        why = ""
        if self.exec_starter is None:
            why = "this monitor runs no execs"  # it said so: no "exec" in its state
        elif self.exit_status is not None or not self.pid:
            why = f"container {self.container_id} is not running"
        if why:
            self._send(client, frames.encode_control({"event": "error", "message": why}))
            return
        if not isinstance(spec, dict):
            self._drop(client)
            return
        fd = client.sock.fileno()
        del self.clients[fd]
        self.reactor.forget(fd)
        self.exec_starter(self, client, spec)

    def _request(self, client: _Client, cmd: dict) -> None:
        """Commands with an answer, sent to the asking client only."""
        reply: dict = {"event": "reply", "req": cmd.get("req")}
        try:
            assert self.cfg is not None
            if not self.owns_cgroups:
                raise RuntimeFailure("not available for an exec'd process")
            if cmd["cmd"] == "stats":
                reply["stats"] = read_stats(self.kernel, self.cfg, self.controllers)
            else:
                set_frozen(self.kernel, self.cfg, self.controllers, cmd["cmd"] == "pause")
                self.paused = cmd["cmd"] == "pause"
            reply["ok"] = True
        except DockyardError as exc:
            reply.update(ok=False, error=exc.message)
        self._send(client, frames.encode_control(reply))

    def _stdin_data(self, data: bytes) -> None:
        if self.stdin_fd < 0 or self.stdin_close_pending:
            return
        self.stdin_buf += data
        self._stdin_flush()

    def _stdin_flush(self) -> None:
        fd = self.stdin_fd
        if fd < 0:
            return
        while self.stdin_buf:
            try:
                n = os.write(fd, self.stdin_buf)
            except (BlockingIOError, InterruptedError):
                self.reactor.on_write(fd, self._stdin_flush)
                self._resume_clients()
                return
            except OSError:
                # The container closed its stdin; what it did not read is lost, as with a pipe.
                self.stdin_buf.clear()
                self.stdin_close_pending = True
                break
            del self.stdin_buf[:n]
        self._resume_clients()
        self.reactor.on_write(fd, None)
        if self.stdin_close_pending and fd not in self.outputs:
            self.reactor.forget(fd)
            os.close(fd)
            self.stdin_fd = -1
            if fd == self.pty_master:
                self.pty_master = -1

    def _resume_clients(self) -> None:
        if len(self.stdin_buf) > MAX_STDIN_BACKLOG // 2:
            return
        for fd, client in self.clients.items():
            if client.paused:
                client.paused = False
                self.reactor.on_read(fd, lambda fd=fd: self._client_readable(fd))

    def _output_readable(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # EIO: the pty's last slave is closed
        if not data:
            stream = self.outputs.pop(fd)
            del stream
            self.reactor.forget(fd)
            if fd != self.stdin_fd:
                os.close(fd)
                if fd == self.pty_master:
                    self.pty_master = -1  # the number may be another container's from now on
            return
        stream = self.outputs[fd]
        if self.log is not None:
            # A full disk loses log lines, as with dockerd; the container goes on.
            try:
                self.log.write(stream, data)
            except OSError as exc:
                self._report_log_error(exc)
        frame = frames.encode(frames.STDOUT if stream == "stdout" else frames.STDERR, data)
        for client in list(self.clients.values()):
            if len(client.out) > MAX_CLIENT_BACKLOG:
                client.dropped += len(data)
            else:
                self._send(client, frame)

    def _report_log_error(self, exc: OSError) -> None:
        """dockerd logs an error when its json-file driver drops a message: tell the
        daemon, which does (not at every line: a flood must not flood its log too)."""
        now = time.monotonic()
        if now - self.log_error_at < LOG_ERROR_INTERVAL or self.log is None:
            return
        self.log_error_at = now
        error = os.strerror(exc.errno) if exc.errno else str(exc)
        self._broadcast_control({"event": "log-error", "error": error, "dropped": self.log.dropped})

    def _send(self, client: _Client, data: bytes) -> None:
        if not client.out:
            try:
                n = client.sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self._drop(client)
                return
            data = data[n:]
            if not data:
                return
        client.out += data
        fd = client.sock.fileno()
        self.reactor.on_write(fd, lambda: self._client_writable(fd))

    def _client_writable(self, fd: int) -> None:
        client = self.clients.get(fd)
        if client is None:
            return
        try:
            n = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        del client.out[:n]
        if not client.out:
            self.reactor.on_write(fd, None)

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if self.clients.pop(fd, None) is not None:
            self.reactor.forget(fd)
            client.sock.close()

    def _broadcast_control(self, message: dict) -> None:
        frame = frames.encode_control(message)
        for client in list(self.clients.values()):
            self._send(client, frame)

    # --- exit ---------------------------------------------------------------------
    def _on_exit(self, pidfd: int) -> None:
        self.reactor.forget(pidfd)
        os.close(pidfd)
        _, status = self.kernel.waitpid(self.pid, 0)
        self.exit_status = status

    def finish(self) -> None:
        """The container has exited and its output is drained: tell and clean up."""
        self._finish()

    def _finish(self, error: str = "") -> None:
        assert self.cfg is not None and self.exit_status is not None
        if self.log is not None:
            with contextlib.suppress(OSError):
                self.log.close()
        record = self._exit_record(error)
        self._stop_listening()
        self._broadcast_control({"event": "exit", **record.to_json()})
        self._flush_clients_and_close()

    def _exit_record(self, error: str) -> ExitRecord:
        """Clean up after the container and record how it ended (exit.json)."""
        assert self.cfg is not None and self.exit_status is not None
        oom = False
        try:
            oom = oom_killed(self.kernel, self.cfg, self.controllers)
            remove_cgroups(self.kernel, self.cfg, self.controllers)
        except KernelError as exc:
            error = error or exc.message
        record = ExitRecord(
            exit_code=exit_code_of(self.exit_status),
            finished_at=now_rfc3339nano(),
            oom_killed=oom,
            error=error,
        )
        # Whatever happens to the file, the exit event below still reaches the daemon.
        with contextlib.suppress(OSError):
            write_exit(self.bundle, record)
        return record

    def _flush_clients_and_close(self) -> None:
        deadline = time.monotonic() + 1.0
        for client in list(self.clients.values()):
            self.reactor.forget(client.sock.fileno())
            if client.out:
                try:
                    client.sock.settimeout(max(0.01, deadline - time.monotonic()))
                    client.sock.sendall(client.out)
                except OSError:
                    pass
            client.sock.close()
        self.clients.clear()


def exit_code_of(wait_status: int) -> int:
    """The code Docker reports: the exit status, or 128+N for a signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return code if code >= 0 else 128 - code


def _read_status(sock: socket.socket) -> dict:
    """Read the init's status socket to EOF (its exec); merge its JSON messages."""
    report: dict = {}
    while not _read_status_step(sock, report):
        pass
    return report


def _read_status_step(sock: socket.socket, report: dict) -> bool:
    """Merge what the status socket has into report; True at EOF (the init exec'd
    or died). A non-blocking socket returns False when it has nothing more yet."""
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 1, socket.MSG_CMSG_CLOEXEC)
        except InterruptedError:
            continue
        except BlockingIOError:
            return False
        for fd in fds:
            report["pty_fd"] = fd
        if not msg and not fds:
            return True
        try:
            report.update(decode_trace(msg) or json.loads(msg))
        except (ValueError, EOFError, TypeError):
            report.setdefault("error", msg.decode(errors="replace"))


def detach_stdio() -> None:
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def detach(kernel: Kernel, monitor: Monitor) -> None:
    """In a freshly forked process: leave the forkserver's session, quiet stdio."""
    kernel.setsid()
    # The forkserver ignores SIGCHLD to reap monitors; the monitor must wait for its child.
    kernel.reset_signals([signal.SIGCHLD])
    detach_stdio()
    # Stopped (e.g. at shutdown): take the container down through the normal
    # exit path, so exit.json and the cgroups are dealt with.
    kernel.set_signal_handler(signal.SIGTERM, lambda _signum, _frame: monitor.kill_container())


def detach_and_run(
    kernel: Kernel,
    container_id: str,
    bundle: str,
    log_path: str,
    first_client: socket.socket,
    request_ns: int = 0,
) -> int:
    monitor = Monitor(kernel, container_id, bundle, log_path, first_client, request_ns)
    detach(kernel, monitor)
    return monitor.run()


def _log_attrs(raw: str | None) -> dict[str, str] | None:
    """The entries' "attrs" (--log-opt labels/env), a JSON object the engine wrote."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {str(k): str(v) for k, v in value.items()}
