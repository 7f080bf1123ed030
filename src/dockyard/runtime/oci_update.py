"""dockyard-runtime pause, resume and update: the live container's cgroups, v1 or v2."""

from __future__ import annotations

import errno
import os

from dockyard.errors import Conflict, KernelError, RuntimeFailure
from dockyard.kernel.linux import LinuxKernel
from dockyard.runtime import cgroups_v2 as v2
from dockyard.runtime import oci_state as S
from dockyard.runtime.cgroups import set_frozen
from dockyard.runtime.oci_lifecycle import config_of, container_status


def set_paused(root: str, container_id: str, paused: bool) -> None:
    c = S.load(root, container_id)
    st = container_status(root, c)
    if paused and st != "running":
        raise Conflict(f"container not running: {st}")
    if not paused and st != "paused":
        raise Conflict(f"container not paused: {st}")
    set_frozen(LinuxKernel(), config_of(c), c.controllers, paused)


# LinuxResources field -> (controller, v1 file); values written as given.
_UPDATABLE = {
    ("memory", "limit"): ("memory", "memory.limit_in_bytes"),
    ("memory", "reservation"): ("memory", "memory.soft_limit_in_bytes"),
    ("memory", "swap"): ("memory", "memory.memsw.limit_in_bytes"),
    ("cpu", "shares"): ("cpu", "cpu.shares"),
    ("cpu", "quota"): ("cpu", "cpu.cfs_quota_us"),
    ("cpu", "period"): ("cpu", "cpu.cfs_period_us"),
    ("pids", "limit"): ("pids", "pids.max"),
}


# The same fields on cgroup v2 (no swap: v2's swap.max is not v1's memsw total;
# cpu quota and period together as cpu.max).
_UPDATABLE_V2 = {
    ("memory", "limit"): ("memory", "memory.max"),
    ("memory", "reservation"): ("memory", "memory.low"),
    ("cpu", "shares"): ("cpu", "cpu.weight"),
    ("pids", "limit"): ("pids", "pids.max"),
}


def update(root: str, container_id: str, resources: dict) -> None:
    """Apply an OCI LinuxResources object to a live container's cgroups.

    Fields this runtime cannot apply are refused by name, before anything is written."""
    c = S.load(root, container_id)
    if container_status(root, c) == "stopped":
        raise Conflict("container not running")
    h = v2.hierarchy_of(c.controllers)
    if h is not None:
        _update_v2(c, h, resources)
        return
    writes: list[tuple[str, str, str]] = []
    for section, values in resources.items():
        if values in (None, {}, []):
            continue
        if not isinstance(values, dict):
            raise RuntimeFailure(f"resources.{section}: not supported by dockyard-runtime update")
        for key, value in values.items():
            if value is None:
                continue
            target = _UPDATABLE.get((section, key))
            if target is None:
                raise RuntimeFailure(
                    f"resources.{section}.{key}: not supported by dockyard-runtime update"
                )
            controller, name = target
            if controller not in c.controllers:
                raise RuntimeFailure(
                    f"resources.{section}.{key}: the {controller} cgroup controller is not available"
                )
            if not isinstance(value, int) or isinstance(value, bool):
                raise RuntimeFailure(f"resources.{section}.{key}: must be an integer")
            text = "max" if (section, key) == ("pids", "limit") and value <= 0 else str(value)
            writes.append((controller, name, text))
    kernel = LinuxKernel()
    # memsw must stay >= the memory limit: raise it first when growing, last when shrinking.
    writes.sort(key=lambda w: w[1] != "memory.memsw.limit_in_bytes")
    for controller, name, text in writes:
        try:
            kernel.cgroup_write(controller, c.cgroup_path, name, text)
        except KernelError as exc:
            if name == "memory.memsw.limit_in_bytes" and exc.errno == errno.EINVAL:
                continue  # retried after the limit below
            raise RuntimeFailure(f"cannot set {name} to {text}: {os.strerror(exc.errno)}") from None
    for controller, name, text in writes:
        if name == "memory.memsw.limit_in_bytes":
            try:
                kernel.cgroup_write(controller, c.cgroup_path, name, text)
            except KernelError as exc:
                raise RuntimeFailure(
                    f"cannot set {name} to {text}: {os.strerror(exc.errno)}"
                ) from None


def _update_v2(c: S.OciContainer, h: str, resources: dict) -> None:
    kernel = LinuxKernel()
    available = v2.root_controllers(kernel, h)
    writes: list[tuple[str, str]] = []
    cpu = resources.get("cpu") or {}
    if cpu.get("quota") is not None or cpu.get("period") is not None:
        if cpu.get("quota") is None or cpu.get("period") is None:
            raise RuntimeFailure(
                "resources.cpu: on cgroup v2, quota and period go together (cpu.max)"
            )
        quota = "max" if int(cpu["quota"]) <= 0 else str(int(cpu["quota"]))
        writes.append(("cpu.max", f"{quota} {int(cpu['period'])}"))
    for section, values in resources.items():
        if values in (None, {}, []):
            continue
        if not isinstance(values, dict):
            raise RuntimeFailure(f"resources.{section}: not supported by dockyard-runtime update")
        for key, value in values.items():
            if value is None or (section == "cpu" and key in ("quota", "period")):
                continue
            target = _UPDATABLE_V2.get((section, key))
            if target is None:
                raise RuntimeFailure(
                    f"resources.{section}.{key}: not supported by dockyard-runtime update on cgroup v2"
                )
            controller, name = target
            if controller not in available:
                raise RuntimeFailure(
                    f"resources.{section}.{key}: the {controller} cgroup v2 controller is not available"
                )
            if not isinstance(value, int) or isinstance(value, bool):
                raise RuntimeFailure(f"resources.{section}.{key}: must be an integer")
            if name == "cpu.weight":
                text = str(v2.cpu_weight(value))
            else:
                text = "max" if value < 0 or (name == "pids.max" and value == 0) else str(value)
            writes.append((name, text))
    for name, text in writes:
        try:
            kernel.cgroup_write(h, c.cgroup_path, name, text)
        except KernelError as exc:
            raise RuntimeFailure(f"cannot set {name} to {text}: {os.strerror(exc.errno)}") from None
