"""The monitor of a process run inside a running container (docker exec).

Same machinery as the container's monitor (stdio, frames, stdin, resize,
kill, exit event), but it creates nothing: it joins the container's pid
namespace for its child, which joins the other namespaces and the cgroups.
It serves only the client that asked for it, writes no log and no
exit.json, and removes no cgroup.
"""

from __future__ import annotations

import dataclasses
import os
import socket

from dockyard.errors import RuntimeFailure
from dockyard.kernel import flags as K
from dockyard.kernel.flags import CAPABILITIES
from dockyard.kernel.interface import Kernel
from dockyard.runtime.bundle import ContainerConfig, load_config
from dockyard.runtime.cgroups import available_controllers
from dockyard.runtime.container_init import child_main
from dockyard.runtime.monitor import Monitor, detach, exit_code_of
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
        first_client: socket.socket,
    ) -> None:
        super().__init__(kernel, container_id, bundle, "", first_client)
        self.spec = spec
        self.target = 0

    def _prepare(self, tracer: Kernel) -> ContainerConfig:
        base = load_config(self.bundle)
        state = read_state(self.bundle)
        if state is None or read_exit(self.bundle) is not None:
            raise RuntimeFailure(f"container {self.container_id} is not running")
        self.target = int(state["pid"])
        if not os.path.exists(f"/proc/{self.target}/ns/pid"):
            raise RuntimeFailure(f"container {self.container_id} is not running")
        spec = self.spec
        caps = sorted(CAPABILITIES, key=CAPABILITIES.__getitem__) if spec.privileged else None
        self.cfg = cfg = dataclasses.replace(
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
        self.controllers = available_controllers(tracer, cfg)
        return cfg

    def _enter_pid_namespace(self, tracer: Kernel) -> None:
        tracer.setns(f"/proc/{self.target}/ns/pid", K.CLONE_NEWPID)

    def _child(
        self, cfg: ContainerConfig, stdio: tuple[int, int, int], status: socket.socket
    ) -> None:
        child_main(self.kernel, cfg, stdio, self.controllers, status, exec_target=self.target)

    def _after_started(self, tracer: Kernel, report: dict, t0: int, t_started: int) -> None:
        pass

    def _exit_record(self, error: str) -> ExitRecord:
        assert self.exit_status is not None
        return ExitRecord(
            exit_code=exit_code_of(self.exit_status), finished_at=now_rfc3339nano(), error=error
        )


def detach_and_run_exec(
    kernel: Kernel, container_id: str, bundle: str, spec: ExecSpec, first_client: socket.socket
) -> int:
    monitor = ExecMonitor(kernel, container_id, bundle, spec, first_client)
    detach(kernel, monitor)
    return monitor.run()
