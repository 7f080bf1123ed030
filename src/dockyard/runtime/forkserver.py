"""The forkserver: a warm, single-threaded process that forks container monitors.

The daemon's event loop is multi-threaded and must never fork, and a fresh
interpreter per container costs 10-35 ms. So the daemon starts this once:

    python -m dockyard.runtime.forkserver <control fd> <daemon pid> <run dir>

(the run dir, <data-root>/run, is not read: a forked monitor keeps this argv, so
`ps` and a leak check can tell whose monitors they are, also after their daemon died)

It imports everything a start needs, says "ready", then reads requests from
the control socket (SOCK_SEQPACKET): a JSON message {"id", "bundle",
"log_path", "request_ns"} (or {"kind": "exec", "id", "bundle", "exec"}) with one fd attached, the monitor's end of a fresh
socketpair, which becomes the monitor's first client (so nothing the
container prints is lost between start and attach).

It dies with the daemon (PR_SET_PDEATHSIG, and EOF on the control socket);
the monitors it forked do not (a forked child does not inherit the death
signal, and they start their own session). SIGCHLD is ignored, so finished
monitors are reaped by the kernel and leave no zombies.

A start does not wait for a fork: one monitor is always forked ahead (the
"spare"). The spare waits on its own socket for one request; on EOF (this
process is gone) it exits. On a request, it is handed the request and the
client fd, and the next spare is forked while it runs the container.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import hashlib
import json
import os
import signal
import socket
import sys
import traceback
from typing import Self

from dockyard.errors import KernelError
from dockyard.kernel.interface import Kernel
from dockyard.kernel.linux import LinuxKernel
from dockyard.runtime import frames
from dockyard.runtime.exec_monitor import detach_and_run_exec
from dockyard.runtime.monitor import detach_and_run
from dockyard.runtime.monitor_host import run_host
from dockyard.runtime.oci_monitor import detach_and_run_external
from dockyard.runtime.spec import ExecSpec

READY = frames.FORKSERVER_READY

# Our ends of the channels to the spare and to the monitor host: a child must
# not hold them, or the other end would not see EOF when this process dies.
_CHANNELS: set[socket.socket] = set()


def _close_channels() -> None:
    for chan in _CHANNELS:
        chan.close()
    _CHANNELS.clear()


def _monitor_child(
    kernel: Kernel, ctl: socket.socket | None, request: dict, client_fd: int
) -> None:
    """Runs in the forked child; never returns."""
    code = 1
    try:
        _close_channels()
        if ctl is not None:
            ctl.close()
        client = socket.socket(fileno=client_fd)
        if request.get("runtime"):
            code = detach_and_run_external(
                kernel,
                str(request["id"]),
                str(request["bundle"]),
                str(request.get("log_path") or ""),
                client,
                dict(request["runtime"]),
            )
        elif request.get("kind") == "exec":
            spec = ExecSpec.from_json(request["exec"])
            code = detach_and_run_exec(
                kernel, str(request["id"]), str(request["bundle"]), spec, client
            )
        else:
            code = detach_and_run(
                kernel,
                str(request["id"]),
                str(request["bundle"]),
                str(request.get("log_path") or ""),
                client,
                int(request.get("request_ns") or 0),
            )
    except Exception:  # noqa: BLE001 - the forked monitor must never unwind into the server loop
        try:
            with open(os.path.join(str(request.get("bundle", "/tmp")), "monitor.err"), "a") as f:
                f.write(traceback.format_exc())
        except OSError:
            pass
    finally:
        os._exit(code)


class _Forked:
    """A child of this process with a SEQPACKET channel to it: the spare or the
    monitor host. `child` runs in the forked process and never returns."""

    def __init__(self, pid: int, chan: socket.socket) -> None:
        self.pid = pid
        self.chan = chan

    @staticmethod
    def child(kernel: Kernel, ctl: socket.socket, chan: socket.socket) -> None:
        raise NotImplementedError

    @classmethod
    def fork(cls, kernel: Kernel, ctl: socket.socket) -> Self | None:
        """None if the fork failed (a start forks on demand then, or retries)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = kernel.fork()
        except KernelError:
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            try:
                ours.close()
                cls.child(kernel, ctl, theirs)
            finally:
                os._exit(1)  # (child exits itself: never unwind into the server loop)
        theirs.close()
        _CHANNELS.add(ours)
        return cls(pid, ours)


class _Spare(_Forked):
    """A monitor forked ahead of its request (see the module docstring)."""

    @staticmethod
    def child(kernel: Kernel, ctl: socket.socket, chan: socket.socket) -> None:
        _spare_child(kernel, ctl, chan)

    def hand_over(self, msg: bytes, client_fd: int) -> bool:
        """Give it the request; False if it is gone (the caller forks instead)."""
        try:
            socket.send_fds(self.chan, [msg], [client_fd])
            return True
        except OSError:
            return False
        finally:
            _CHANNELS.discard(self.chan)
            self.chan.close()

    def stop(self, kernel: Kernel) -> None:
        """Close its socket (it exits on EOF) and wait until it has."""
        _CHANNELS.discard(self.chan)
        self.chan.close()
        # SIGCHLD is ignored: waitpid returns (ECHILD) once the child has exited.
        with contextlib.suppress(KernelError):
            kernel.waitpid(self.pid, 0)


def _spare_child(kernel: Kernel, ctl: socket.socket, chan: socket.socket) -> None:
    """Runs in the forked spare; never returns."""
    try:
        _close_channels()
        ctl.close()
        while True:
            try:
                # CLOEXEC from the start: the client fd is the daemon's link.
                msg, fds, _flags, _addr = socket.recv_fds(chan, 65536, 1, socket.MSG_CMSG_CLOEXEC)
                break
            except InterruptedError:
                continue
        chan.close()
        if not msg or not fds:
            os._exit(0)  # the forkserver is gone
        request = json.loads(msg)
    except Exception:  # noqa: BLE001 - a spare must never unwind into the server loop
        os._exit(1)
    _monitor_child(kernel, None, request, fds[0])


class _Host(_Forked):
    """The monitor host (monitor_host.py) that runs every container's monitor."""

    @staticmethod
    def child(kernel: Kernel, ctl: socket.socket, chan: socket.socket) -> None:
        code = 1
        try:
            _close_channels()
            ctl.close()
            code = run_host(kernel, chan)
        except BaseException:  # noqa: BLE001 - never unwind into the server loop
            pass
        finally:
            os._exit(code)

    def send(self, msg: bytes, client_fd: int) -> bool:
        """Hand it a start; False if it is gone (killed: a new one is forked).

        Its answer says it took the request: a send alone may still reach a host
        that a SIGKILL is taking down, and be lost with it."""
        try:
            socket.send_fds(self.chan, [msg], [client_fd])
            return self.chan.recv(16) == frames.MONITOR_HOST_TOOK
        except OSError:
            return False

    def close(self) -> None:
        """It ends once its last container has (EOF on its channel)."""
        _CHANNELS.discard(self.chan)
        self.chan.close()

    def stop(self, kernel: Kernel) -> None:
        """At the forkserver's end: a host without containers exits now, and is
        waited for (nothing the daemon started outlives its stop); one with
        containers says so and stays."""
        try:
            self.chan.shutdown(socket.SHUT_WR)
            self.chan.settimeout(5)
            stays = self.chan.recv(16) == frames.MONITOR_HOST_STAYS
        except OSError:
            stays = True  # busy (or gone): not worth holding the daemon's stop
        self.close()
        if not stays:
            # SIGCHLD is ignored: waitpid returns (ECHILD) once it has exited.
            with contextlib.suppress(KernelError):
                kernel.waitpid(self.pid, 0)


def _start_in_host(
    kernel: Kernel, ctl: socket.socket, host: _Host | None, msg: bytes, fd: int
) -> _Host:
    """Give a container start to the monitor host, forking a new one if it is gone."""
    if host is not None and host.send(msg, fd):
        return host
    if host is not None:
        host.close()
    new = _Host.fork(kernel, ctl)
    if new is None or not new.send(msg, fd):
        raise KernelError("fork", ("monitor host",), 11)
    return new


def serve(kernel: Kernel, ctl: socket.socket) -> None:
    spare: _Spare | None = None
    # Forked before anything else, so it holds nothing of a container's.
    host = _Host.fork(kernel, ctl)
    try:
        while True:
            if spare is None:
                spare = _Spare.fork(kernel, ctl)
            try:
                msg, fds, _flags, _addr = socket.recv_fds(ctl, 65536, 4, socket.MSG_CMSG_CLOEXEC)
            except InterruptedError:
                continue
            except ConnectionResetError:
                return
            if not msg:
                return  # the daemon closed the control socket
            if not fds:
                continue
            for extra in fds[1:]:
                os.close(extra)
            client_fd = fds[0]
            handed = False
            try:
                request = json.loads(msg)
                if not request.get("runtime") and request.get("kind") != "exec":
                    host = _start_in_host(kernel, ctl, host, msg, client_fd)
                    os.close(client_fd)
                    continue
                if spare is not None:
                    handed = spare.hand_over(msg, client_fd)
                    spare = None  # used, or gone: the next one is forked before the next request
                pid = -1 if handed else kernel.fork()
            except (ValueError, KernelError) as exc:
                with contextlib.suppress(OSError):
                    os.write(
                        client_fd,
                        frames.encode_control(
                            {"event": "error", "message": str(exc), "kind": "other"}
                        ),
                    )
                os.close(client_fd)
                continue
            if pid == 0:
                _monitor_child(kernel, ctl, request, client_fd)
            os.close(client_fd)
    finally:
        # A spare must not outlive the forkserver (nor the daemon's stop).
        if spare is not None:
            spare.stop(kernel)
        if host is not None:
            host.stop(kernel)


def main(argv: list[str]) -> int:
    ctl_fd, daemon_pid = int(argv[1]), int(argv[2])
    kernel = LinuxKernel()
    kernel.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != daemon_pid:
        return 0  # the daemon died before we armed the death signal
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Answers that do not change, computed once here rather than in every container.
    kernel.cap_last()
    kernel.permitted_caps()
    # Every start and exec checks its seccomp program's digest and decodes it
    # (seccomp.program_from_annotation): libcrypto, its config file and base64 are
    # loaded here once, not in each forked monitor (~5 ms per exec).
    hashlib.sha256(base64.b64decode(b"")).hexdigest()
    # Everything imported so far is shared with every monitor: keep the
    # collector from touching (and so copying) those pages after each fork.
    gc.collect()
    gc.freeze()
    ctl = socket.socket(fileno=ctl_fd)
    ctl.set_inheritable(False)  # passed to us inheritable; no child needs it
    ctl.setblocking(True)
    ctl.sendall(READY)
    serve(kernel, ctl)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
