"""dockyard-runtime exec: a process in a running container, as `runc exec` runs it.

It joins the container's pid namespace, forks, and the child joins the other
namespaces and the cgroups of the container's init (container_init's
exec_in_container); it returns once the process has exec'd (--detach, what
containerd's shim asks) or when it exits, with its code.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket

from dockyard.errors import Conflict, KernelError, RuntimeFailure
from dockyard.kernel import flags as K
from dockyard.runtime import oci_state as S
from dockyard.runtime import record
from dockyard.runtime.bundle import ContainerConfig, attach_seccomp_program
from dockyard.runtime.container_init import exec_in_container
from dockyard.runtime.oci_lifecycle import (
    DetachedInitKernel,
    check_console,
    check_executable,
    child_run,
    config_of,
    connect_console,
    container_status,
    wait_forwarding_signals,
    write_pid_file,
)


def process_config(base: ContainerConfig, process: dict) -> ContainerConfig:
    """The container's config with an OCI `process` object (exec --process) in place."""
    try:
        user = process.get("user") or {}
        caps = process.get("capabilities")
        changes: dict = {
            "args": [str(a) for a in process["args"]],
            "env": [str(e) for e in process.get("env") or []],
            "cwd": str(process.get("cwd") or "/"),
            "uid": int(user.get("uid", 0)),
            "gid": int(user.get("gid", 0)),
            "additional_gids": [int(g) for g in user.get("additionalGids") or []],
            "terminal": bool(process.get("terminal", False)),
            "no_new_privileges": bool(process.get("noNewPrivileges", False)),
        }
        if caps is not None:
            for kind in ("bounding", "effective", "permitted", "inheritable"):
                changes[kind] = [str(c) for c in caps.get(kind) or []]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RuntimeFailure(f"invalid process JSON: {exc!r}") from None
    if not changes["args"]:
        raise RuntimeFailure("process.args: no command specified")
    return record.replace(base, **changes)


def exec_process(
    root: str,
    container_id: str,
    process: dict,
    *,
    detach: bool = False,
    pid_file: str = "",
    console_socket: str = "",
) -> int:
    """Run `process` in the container; its exit code, or 0 once started with `detach`."""
    c = S.load(root, container_id)
    st = container_status(root, c)
    if st == "stopped":
        raise Conflict("cannot exec in a stopped container")
    if st == "paused":
        raise Conflict("cannot exec in a paused container")
    cfg = process_config(config_of(c), process)
    # Compiled (or read from the cache) here: the child joins the container's mount
    # namespace, where neither libseccomp nor our sources are.
    attach_seccomp_program(cfg, c.config, root)
    check_console(cfg.terminal, console_socket)
    console = connect_console(console_socket)
    kernel = DetachedInitKernel()
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        kernel.setns(f"/proc/{c.pid}/ns/pid", K.CLONE_NEWPID)
        pid = kernel.fork()
        if pid == 0:
            ours.close()

            def send_pty(master: int) -> None:
                socket.send_fds(theirs, [b'{"pty": true}'], [master])

            child_run(
                theirs,
                lambda: exec_in_container(
                    kernel,
                    cfg,
                    c.pid,
                    (0, 1, 2),
                    c.controllers,
                    send_pty=send_pty,
                    before_exec=lambda: check_executable(cfg.args, cfg.env),
                ),
            )
        kernel.setns("/proc/self/ns/pid", K.CLONE_NEWPID)
        theirs.close()
        with ours:
            failure = _until_exec(ours, console)
        if failure is not None:
            with contextlib.suppress(KernelError):
                kernel.waitpid(pid, 0)
            raise failure
    finally:
        if console is not None:
            console.close()
    if pid_file:
        write_pid_file(pid_file, pid)
    if detach:
        return 0
    return wait_forwarding_signals(kernel, pid)


def _until_exec(sock: socket.socket, console: socket.socket | None) -> RuntimeFailure | None:
    """Read the child's status socket to EOF (its exec); the failure it reported, if any."""
    failure: RuntimeFailure | None = None
    while True:
        msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 1)
        for fd in fds:
            try:
                if console is not None:
                    socket.send_fds(console, [b"/dev/ptmx"], [fd])
            finally:
                os.close(fd)
        if not msg and not fds:
            return failure
        if msg:
            event = json.loads(msg)
            if "error" in event:
                failure = RuntimeFailure(str(event["error"]), str(event.get("kind", "other")))
