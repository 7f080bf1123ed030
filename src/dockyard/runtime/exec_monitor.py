"""The monitor of a process run inside a running container (docker exec).

Same machinery as the container's monitor (stdio, frames, stdin, resize,
kill, exit event), but it creates nothing: it joins the container's pid
namespace for its child, which joins the other namespaces and the cgroups.
It serves only the client that asked for it, writes no log and no
exit.json, and removes no cgroup.

It runs where the container's monitor runs, in the monitor host
(monitor_host.py): the container's monitor hands it the connection that asked
(command "exec"), with the config and the init's pid it already holds, and the
host forks the process; no interpreter is forked for the exec, no file is read.
A container whose monitor cannot (another runtime's, or one from before) gets
one in a process of its own, forked by the forkserver, that reads the bundle.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Protocol

from dockyard.errors import RuntimeFailure
from dockyard.kernel import flags as K
from dockyard.kernel.flags import CAPABILITIES
from dockyard.kernel.interface import Kernel
from dockyard.runtime import record
from dockyard.runtime.bundle import ContainerConfig, load_config
from dockyard.runtime.cgroups import available_controllers
from dockyard.runtime.container_init import child_main
from dockyard.runtime.monitor import Monitor, _Reactor, detach, exit_code_of
from dockyard.runtime.rfc3339 import now_rfc3339nano
from dockyard.runtime.spec import ExecSpec
from dockyard.runtime.state import ExitRecord, read_exit, read_state


class ExecMonitor(Monitor):
    def __init__(
        self,
        kernel: Kernel,
        container_id: str,
        bundle: str,
        spec: ExecSpec,
        first_client: socket.socket | None,
        *,
        reactor: _Reactor | None = None,
        container: ContainerMonitorView | None = None,
    ) -> None:
        super().__init__(kernel, container_id, bundle, "", first_client, reactor=reactor)
        self.spec = spec
        self.target = 0
        self.container = container  # in the monitor host: what its monitor knows

    def _prepare(self, tracer: Kernel) -> ContainerConfig:
        if self.container is not None:
            base, self.target = self.container.cfg, self.container.pid
            if base is None or not self.target:
                raise RuntimeFailure(f"container {self.container_id} is not running")
            self.controllers = self.container.controllers
            self.cfg = exec_config(base, self.spec)
            return self.cfg
        base = load_config(self.bundle)
        state = read_state(self.bundle)
        if state is None or read_exit(self.bundle) is not None:
            raise RuntimeFailure(f"container {self.container_id} is not running")
        self.target = int(state["pid"])
        if not os.path.exists(f"/proc/{self.target}/ns/pid"):
            raise RuntimeFailure(f"container {self.container_id} is not running")
        self.cfg = cfg = exec_config(base, self.spec)
        self.controllers = available_controllers(tracer, cfg)
        return cfg

    def _enter_pid_namespace(self, tracer: Kernel) -> None:
        tracer.setns(f"/proc/{self.target}/ns/pid", K.CLONE_NEWPID)

    def _child(
        self, cfg: ContainerConfig, stdio: tuple[int, int, int], status: socket.socket
    ) -> None:
        if self.shared:
            # The host's SIGTERM handler stops every container: not this process's business.
            self.kernel.reset_signals([signal.SIGTERM])
        child_main(self.kernel, cfg, stdio, self.controllers, status, exec_target=self.target)

    def _after_started(self, tracer: Kernel, report: dict, t0: int, t_started: int) -> None:
        pass

    def _exit_record(self, error: str) -> ExitRecord:
        assert self.exit_status is not None
        return ExitRecord(
            exit_code=exit_code_of(self.exit_status), finished_at=now_rfc3339nano(), error=error
        )


class ContainerMonitorView(Protocol):
    """What an exec takes from the container's monitor (monitor.Monitor)."""

    cfg: ContainerConfig | None
    pid: int
    controllers: list[str]


def exec_config(base: ContainerConfig, spec: ExecSpec) -> ContainerConfig:
    """The container's config with the exec's process in place (unset fields keep the
    container's values; --privileged: every capability, no seccomp filter)."""
    caps = sorted(CAPABILITIES, key=CAPABILITIES.__getitem__) if spec.privileged else None
    return record.replace(
        base,
        args=list(spec.args),
        env=list(spec.env) or base.env,
        cwd=spec.cwd or base.cwd,
        uid=base.uid if spec.uid is None else spec.uid,
        gid=base.gid if spec.gid is None else spec.gid,
        additional_gids=base.additional_gids
        if spec.additional_gids is None
        else spec.additional_gids,
        terminal=spec.terminal,
        open_stdin=spec.open_stdin,
        bounding=caps or base.bounding,
        effective=caps or base.effective,
        permitted=caps or base.permitted,
        seccomp=None if spec.privileged else base.seccomp,
        seccomp_program=None if spec.privileged else base.seccomp_program,
    )


def detach_and_run_exec(
    kernel: Kernel, container_id: str, bundle: str, spec: ExecSpec, first_client: socket.socket
) -> int:
    monitor = ExecMonitor(kernel, container_id, bundle, spec, first_client)
    detach(kernel, monitor)
    return monitor.run()
