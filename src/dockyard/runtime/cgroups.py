"""The container's cgroups (v1): one directory per controller, limits, removal.

The monitor creates them before forking the container's init, which joins
them as its first act (so everything it does is accounted); the monitor
itself stays outside, so the directories can be removed when the init exits.
"""

from __future__ import annotations

from dockyard.kernel.interface import Kernel
from dockyard.runtime.bundle import CGROUP_CONTROLLERS, ContainerConfig


def available_controllers(kernel: Kernel) -> list[str]:
    return [c for c in CGROUP_CONTROLLERS if kernel.cgroup_has(c, "", "cgroup.procs")]


def create_cgroups(kernel: Kernel, cfg: ContainerConfig, controllers: list[str]) -> None:
    path, res = cfg.cgroup_path, cfg.resources
    for controller in controllers:
        kernel.cgroup_create(controller, path)
    if "memory" in controllers and res.memory > 0:
        kernel.cgroup_write("memory", path, "memory.limit_in_bytes", str(res.memory))
        # memsw exists only with swap accounting; Docker warns and goes on without it.
        if res.memory_swap != 0 and kernel.cgroup_has(
            "memory", path, "memory.memsw.limit_in_bytes"
        ):
            kernel.cgroup_write("memory", path, "memory.memsw.limit_in_bytes", str(res.memory_swap))
    if "cpu" in controllers and res.cpu_shares > 0:
        kernel.cgroup_write("cpu", path, "cpu.shares", str(res.cpu_shares))
    if "pids" in controllers and res.pids_limit != 0:
        limit = "max" if res.pids_limit < 0 else str(res.pids_limit)
        kernel.cgroup_write("pids", path, "pids.max", limit)
    if "devices" in controllers and res.devices:
        for rule in res.devices:
            name = "devices.allow" if rule.allow else "devices.deny"
            kernel.cgroup_write("devices", path, name, rule.cgroup_line())


def join_cgroups(kernel: Kernel, cfg: ContainerConfig, controllers: list[str]) -> None:
    for controller in controllers:
        kernel.cgroup_add_pid(controller, cfg.cgroup_path, 0)


def oom_killed(kernel: Kernel, cfg: ContainerConfig, controllers: list[str]) -> bool:
    if "memory" not in controllers:
        return False
    text = kernel.cgroup_read("memory", cfg.cgroup_path, "memory.oom_control")
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value or 0) > 0
    return False


def remove_cgroups(kernel: Kernel, cfg: ContainerConfig, controllers: list[str]) -> None:
    for controller in controllers:
        kernel.cgroup_remove(controller, cfg.cgroup_path)
