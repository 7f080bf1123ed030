"""The container's cgroup on cgroup v2 (the unified hierarchy): one directory
for every controller, the same limits, OOM report, freezer and counters as v1.

cgroups.py picks this when the host has no v1 controllers mounted and a
cgroup2 hierarchy is there; its functions take the controller list, in which
v2 is the one entry V2_PREFIX + <hierarchy> ("" for /sys/fs/cgroup itself,
as on a pure v2 host). Through the Kernel, the hierarchy is the "controller"
argument of the cgroup_* calls: <cgroup root>/<hierarchy>/<path>.

Device rules are an eBPF program on v2 (devicefilter.py), attached to the
container's cgroup before its init joins it.
"""

from __future__ import annotations

import os
import time

from dockyard.errors import Conflict, KernelError, RuntimeFailure
from dockyard.kernel.interface import Kernel
from dockyard.runtime.bundle import ContainerConfig

V2_PREFIX = "cgroup2:"
# What the limits need, in the order they are enabled.
WANTED = ("cpu", "cpuset", "io", "memory", "pids")


def hierarchy_of(controllers: list[str]) -> str | None:
    """The v2 hierarchy a controller list names, or None for v1."""
    if len(controllers) == 1 and controllers[0].startswith(V2_PREFIX):
        return controllers[0][len(V2_PREFIX) :]
    return None


def host_cgroup_version(root: str = "") -> str:
    """ "2" on a unified host (cgroup2 mounted at the root), else "1" (v1 or hybrid).
    The root: /sys/fs/cgroup, or where DOCKYARD_CGROUP_ROOT says."""
    root = root or os.environ.get("DOCKYARD_CGROUP_ROOT") or "/sys/fs/cgroup"
    return "2" if os.path.exists(os.path.join(root, "cgroup.controllers")) else "1"


def detect(kernel: Kernel, hierarchy: str = "") -> list[str]:
    """[V2_PREFIX + hierarchy] if it is a cgroup2 root, else []."""
    if kernel.cgroup_has(hierarchy, "", "cgroup.controllers"):
        return [V2_PREFIX + hierarchy]
    return []


def root_controllers(kernel: Kernel, h: str) -> set[str]:
    return set(kernel.cgroup_read(h, "", "cgroup.controllers").split())


def cpu_weight(shares: int) -> int:
    """cpu.shares (2..262144) to cpu.weight (1..10000), as runc converts it."""
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io(weight: int) -> int:
    """blkio.weight (10..1000) to io.weight (1..10000), as runc converts it."""
    return 1 + ((weight - 10) * 9999) // 990


def _needed(cfg: ContainerConfig) -> list[str]:
    res = cfg.resources
    need = []
    if res.cpu_shares > 0 or res.cpu_quota or res.cpu_period:
        need.append("cpu")
    if res.cpuset_cpus or res.cpuset_mems:
        need.append("cpuset")
    if res.blkio_weight:
        need.append("io")
    if res.memory > 0 or res.memory_swap != 0 or res.memory_reservation > 0:
        need.append("memory")
    if res.pids_limit != 0:
        need.append("pids")
    return need


def create(kernel: Kernel, h: str, cfg: ContainerConfig) -> None:
    from dockyard.runtime.devicefilter import compile_rules  # v2 hosts only (v1: devices.*)

    res, path = cfg.resources, cfg.cgroup_path
    try:
        program = compile_rules(res.devices) if res.devices else b""
    except ValueError as exc:
        raise RuntimeFailure(f"linux.resources.devices: {exc}") from None
    available = root_controllers(kernel, h)
    need = _needed(cfg)
    missing = [c for c in need if c not in available]
    if missing:
        raise RuntimeFailure(
            f"the {', '.join(missing)} cgroup v2 controller(s) are not available on this host "
            f"(cgroup.controllers: {' '.join(sorted(available)) or 'none'}): the limit cannot be enforced"
        )
    kernel.cgroup_create(h, path)
    if program:
        kernel.cgroup_attach_device_filter(h, path, program)
    # Controllers reach a cgroup only when every ancestor enables them for its children.
    enable = " ".join(f"+{c}" for c in WANTED if c in available)
    parts = path.split("/")
    if enable:
        for depth in range(len(parts)):
            kernel.cgroup_write(h, "/".join(parts[:depth]), "cgroup.subtree_control", enable)
    if res.memory > 0:
        kernel.cgroup_write(h, path, "memory.max", str(res.memory))
    if res.memory_swap != 0 and kernel.cgroup_has(h, path, "memory.swap.max"):
        # v1's memsw is memory+swap; v2's swap.max is the swap alone.
        swap = "max" if res.memory_swap < 0 else str(max(0, res.memory_swap - res.memory))
        kernel.cgroup_write(h, path, "memory.swap.max", swap)
    if res.memory_reservation > 0:
        kernel.cgroup_write(h, path, "memory.low", str(res.memory_reservation))
    if res.cpu_shares > 0:
        kernel.cgroup_write(h, path, "cpu.weight", str(cpu_weight(res.cpu_shares)))
    if res.cpu_quota or res.cpu_period:
        quota = str(res.cpu_quota) if res.cpu_quota > 0 else "max"
        kernel.cgroup_write(h, path, "cpu.max", f"{quota} {res.cpu_period or 100000}")
    if res.cpuset_cpus:
        kernel.cgroup_write(h, path, "cpuset.cpus", res.cpuset_cpus)
    if res.cpuset_mems:
        kernel.cgroup_write(h, path, "cpuset.mems", res.cpuset_mems)
    if res.blkio_weight:
        kernel.cgroup_write(h, path, "io.weight", str(blkio_weight_to_io(res.blkio_weight)))
    if res.pids_limit != 0:
        kernel.cgroup_write(
            h, path, "pids.max", "max" if res.pids_limit < 0 else str(res.pids_limit)
        )


def update(kernel: Kernel, h: str, cfg: ContainerConfig, res: dict) -> list[str]:
    """docker update of a running container (engine/update.py's live_resources):
    its cgroup's v2 files now. A limit whose controller the container's cgroup
    does not have is refused by name before anything is written."""
    path = cfg.cgroup_path
    have = set(kernel.cgroup_read(h, path, "cgroup.controllers").split())
    writes: list[tuple[str, str, str]] = []  # (controller, file, value)
    memory, swap = int(res["memory"]), int(res["memory_swap"])
    if memory > 0:
        writes.append(("memory", "memory.max", str(memory)))
    if swap != 0 and kernel.cgroup_has(h, path, "memory.swap.max"):
        value = "max" if swap < 0 else str(max(0, swap - memory))
        writes.append(("memory", "memory.swap.max", value))
    if int(res["memory_reservation"]) > 0:
        writes.append(("memory", "memory.low", str(res["memory_reservation"])))
    if int(res["cpu_shares"]) > 0:
        writes.append(("cpu", "cpu.weight", str(cpu_weight(int(res["cpu_shares"])))))
    quota = int(res["cpu_quota"])
    if quota > 0 or "cpu" in have:  # no quota (-1) on a cgroup without cpu: nothing to do
        cpu_max = f"{quota if quota > 0 else 'max'} {int(res['cpu_period']) or 100000}"
        writes.append(("cpu", "cpu.max", cpu_max))
    for key, name in (("cpuset_cpus", "cpuset.cpus"), ("cpuset_mems", "cpuset.mems")):
        if res[key]:
            writes.append(("cpuset", name, str(res[key])))
    if int(res["blkio_weight"]) > 0:
        writes.append(("io", "io.weight", str(blkio_weight_to_io(int(res["blkio_weight"])))))
    pids = int(res["pids_limit"])
    if pids != 0:
        writes.append(("pids", "pids.max", "max" if pids < 0 else str(pids)))
    missing = sorted({c for c, name, _ in writes if c not in have})
    if missing:
        names = ", ".join(name for c, name, _ in writes if c in missing)
        raise RuntimeFailure(
            f"cannot update {names}: the {', '.join(missing)} cgroup v2 controller(s) are not "
            f"available to the container (its cgroup.controllers: {' '.join(sorted(have)) or 'none'})"
        )
    for _controller, name, value in writes:
        try:
            kernel.cgroup_write(h, path, name, value)
        except KernelError as exc:
            raise RuntimeFailure(f"cannot set {name} to {value}: {exc.message}") from None
    return []


def join(kernel: Kernel, h: str, cfg: ContainerConfig) -> None:
    # v2 has no `tasks` file: the process moves itself through cgroup.procs.
    kernel.cgroup_write(h, cfg.cgroup_path, "cgroup.procs", "0")


def _flat(kernel: Kernel, h: str, path: str, name: str) -> dict[str, int]:
    try:
        text = kernel.cgroup_read(h, path, name)
    except KernelError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def oom_killed(kernel: Kernel, h: str, cfg: ContainerConfig) -> bool:
    return _flat(kernel, h, cfg.cgroup_path, "memory.events").get("oom_kill", 0) > 0


def remove(kernel: Kernel, h: str, cfg: ContainerConfig) -> None:
    kernel.cgroup_remove(h, cfg.cgroup_path)


def set_frozen(kernel: Kernel, h: str, cfg: ContainerConfig, frozen: bool) -> None:
    """docker pause / unpause: cgroup.freeze, waiting for cgroup.events to agree."""
    path = cfg.cgroup_path
    kernel.cgroup_write(h, path, "cgroup.freeze", "1" if frozen else "0")
    deadline = time.monotonic() + 5
    while _flat(kernel, h, path, "cgroup.events").get("frozen") != int(frozen):
        if time.monotonic() > deadline:
            raise Conflict(f"container did not {'freeze' if frozen else 'thaw'} within 5s")
        time.sleep(0.001)


def _int(kernel: Kernel, h: str, path: str, name: str) -> int | None:
    try:
        text = kernel.cgroup_read(h, path, name).strip()
    except KernelError:
        return None
    return -1 if text == "max" else int(text)


def read_stats(kernel: Kernel, h: str, cfg: ContainerConfig) -> dict:
    """The counters v1's read_stats gives, in the same shape (docker stats)."""
    path = cfg.cgroup_path
    stats: dict = {}
    if kernel.cgroup_has(h, path, "memory.current"):
        stats["memory"] = {
            "usage": _int(kernel, h, path, "memory.current"),
            "max_usage": _int(kernel, h, path, "memory.peak"),
            "limit": _int(kernel, h, path, "memory.max"),
            "failcnt": _flat(kernel, h, path, "memory.events").get("max"),
            "stats": _flat(kernel, h, path, "memory.stat"),
        }
    cpu = _flat(kernel, h, path, "cpu.stat")
    if cpu:
        ticks = os.sysconf("SC_CLK_TCK")
        stats["cpu"] = {
            "total_usage_ns": cpu.get("usage_usec", 0) * 1000,
            "percpu_usage_ns": [],  # v2 has no per-CPU split
            "user_ticks": cpu.get("user_usec", 0) * ticks // 1_000_000,
            "system_ticks": cpu.get("system_usec", 0) * ticks // 1_000_000,
        }
    if kernel.cgroup_has(h, path, "pids.current"):
        stats["pids"] = {
            "current": _int(kernel, h, path, "pids.current"),
            "limit": _int(kernel, h, path, "pids.max"),
        }
    return stats
