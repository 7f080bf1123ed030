"""The container's cgroups: one directory per controller (v1), limits, removal.

On a host without v1 controllers but with cgroup v2, the same functions work
on the unified hierarchy (cgroups_v2.py): the controller list is then the one
entry that names it, and each function hands over to its v2 counterpart.

The monitor creates them before forking the container's init, which joins
them as its first act (so everything it does is accounted); the monitor
itself stays outside, so the directories can be removed when the init exits.
"""

from __future__ import annotations

import time

from dockyard.errors import Conflict, InvalidParameter, KernelError
from dockyard.kernel.interface import Kernel
from dockyard.runtime import cgroups_v2 as v2
from dockyard.runtime.bundle import CGROUP_CONTROLLERS, ContainerConfig, cgroup_path_error


def check_cgroup_parent(parent: str) -> None:
    """Refuse a HostConfig.CgroupParent that would leave the cgroup hierarchy.

    As with dockerd's cgroupfs driver, "/a/b" and "a/b" both name a/b below each
    controller's root; ".." (which would reach /sys/fs/cgroup/.. and up, i.e. any
    host directory) is refused.
    """
    error = cgroup_path_error(parent)
    if error:
        raise InvalidParameter(f'invalid CgroupParent "{parent}": {error}')


def available_controllers(kernel: Kernel, cfg: ContainerConfig | None = None) -> list[str]:
    """The controllers a container gets: the usual ones, plus cpuset and blkio only when
    it asks for them (they cost directories and writes at every start otherwise)."""
    wanted = list(CGROUP_CONTROLLERS)
    if cfg is not None:
        if cfg.resources.cpuset_cpus or cfg.resources.cpuset_mems:
            wanted.append("cpuset")
        if cfg.resources.blkio_weight:
            wanted.append("blkio")
    v1 = [c for c in wanted if kernel.cgroup_has(c, "", "cgroup.procs")]
    # No v1 controller mounted: the v2 hierarchy at the cgroup root, if there is one.
    return v1 or v2.detect(kernel)


# The blkio weight knob: CFQ's, or BFQ's (Linux >= 5.0 has no CFQ).
BLKIO_WEIGHT_FILES = ("blkio.weight", "blkio.bfq.weight")


def blkio_weight_file(kernel: Kernel) -> str | None:
    return next((f for f in BLKIO_WEIGHT_FILES if kernel.cgroup_has("blkio", "", f)), None)


def _inherit_cpuset(kernel: Kernel, path: str) -> None:
    """cgroup v1 cpuset: a new directory starts with no cpus and no mems, and no task
    may join it; give each level its parent's, top down."""
    parts = [p for p in path.split("/") if p]
    for depth in range(1, len(parts) + 1):
        here, parent = "/".join(parts[:depth]), "/".join(parts[: depth - 1])
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not kernel.cgroup_read("cpuset", here, name).strip():
                kernel.cgroup_write(
                    "cpuset", here, name, kernel.cgroup_read("cpuset", parent, name).strip()
                )


def create_cgroups(kernel: Kernel, cfg: ContainerConfig, controllers: list[str]) -> None:
    h = v2.hierarchy_of(controllers)
    if h is not None:
        v2.create(kernel, h, cfg)
        return
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
    if "memory" in controllers and res.memory_reservation > 0:
        kernel.cgroup_write(
            "memory", path, "memory.soft_limit_in_bytes", str(res.memory_reservation)
        )
    if "cpu" in controllers and res.cpu_shares > 0:
        kernel.cgroup_write("cpu", path, "cpu.shares", str(res.cpu_shares))
    if "cpu" in controllers and res.cpu_period:
        kernel.cgroup_write("cpu", path, "cpu.cfs_period_us", str(res.cpu_period))
    if "cpu" in controllers and res.cpu_quota:
        kernel.cgroup_write("cpu", path, "cpu.cfs_quota_us", str(res.cpu_quota))
    if "cpuset" in controllers:
        _inherit_cpuset(kernel, path)
        if res.cpuset_cpus:
            kernel.cgroup_write("cpuset", path, "cpuset.cpus", res.cpuset_cpus)
        if res.cpuset_mems:
            kernel.cgroup_write("cpuset", path, "cpuset.mems", res.cpuset_mems)
    if "blkio" in controllers and res.blkio_weight:
        knob = blkio_weight_file(kernel)
        if knob is None:  # the engine refuses it on such a host; a foreign bundle too
            raise InvalidParameter("blkio weight: this host's block cgroup has no weight knob")
        kernel.cgroup_write("blkio", path, knob, str(res.blkio_weight))
    if "pids" in controllers and res.pids_limit != 0:
        limit = "max" if res.pids_limit < 0 else str(res.pids_limit)
        kernel.cgroup_write("pids", path, "pids.max", limit)
    if "devices" in controllers and res.devices:
        for rule in res.devices:
            name = "devices.allow" if rule.allow else "devices.deny"
            kernel.cgroup_write("devices", path, name, rule.cgroup_line())


def join_cgroups(kernel: Kernel, cfg: ContainerConfig, controllers: list[str]) -> None:
    h = v2.hierarchy_of(controllers)
    if h is not None:
        v2.join(kernel, h, cfg)
        return
    for controller in controllers:
        kernel.cgroup_add_pid(controller, cfg.cgroup_path, 0)


def oom_killed(kernel: Kernel, cfg: ContainerConfig, controllers: list[str]) -> bool:
    h = v2.hierarchy_of(controllers)
    if h is not None:
        return v2.oom_killed(kernel, h, cfg)
    if "memory" not in controllers:
        return False
    text = kernel.cgroup_read("memory", cfg.cgroup_path, "memory.oom_control")
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value or 0) > 0
    return False


def remove_cgroups(kernel: Kernel, cfg: ContainerConfig, controllers: list[str]) -> None:
    h = v2.hierarchy_of(controllers)
    if h is not None:
        v2.remove(kernel, h, cfg)
        return
    for controller in controllers:
        kernel.cgroup_remove(controller, cfg.cgroup_path)


def set_frozen(kernel: Kernel, cfg: ContainerConfig, controllers: list[str], frozen: bool) -> None:
    """docker pause / unpause: the v1 freezer, waiting until every task is frozen."""
    h = v2.hierarchy_of(controllers)
    if h is not None:
        v2.set_frozen(kernel, h, cfg, frozen)
        return
    if "freezer" not in controllers:
        raise Conflict("pausing needs the freezer cgroup controller")
    want = "FROZEN" if frozen else "THAWED"
    deadline = time.monotonic() + 5
    while True:
        kernel.cgroup_write("freezer", cfg.cgroup_path, "freezer.state", want)
        state = kernel.cgroup_read("freezer", cfg.cgroup_path, "freezer.state").strip()
        if state == want:
            return
        if time.monotonic() > deadline:
            raise Conflict(f"container did not reach {want} (still {state})")
        time.sleep(0.001)  # FREEZING: tasks still on their way; writing again retries them


def _read_int(kernel: Kernel, controller: str, path: str, name: str) -> int | None:
    try:
        text = kernel.cgroup_read(controller, path, name).strip()
    except KernelError:
        return None
    return -1 if text == "max" else int(text)


def read_stats(kernel: Kernel, cfg: ContainerConfig, controllers: list[str]) -> dict:
    """Raw cgroup counters for docker stats (the engine shapes them)."""
    h = v2.hierarchy_of(controllers)
    if h is not None:
        return v2.read_stats(kernel, h, cfg)
    path = cfg.cgroup_path
    stats: dict = {}
    if "memory" in controllers:
        stat = {}
        for line in kernel.cgroup_read("memory", path, "memory.stat").splitlines():
            key, _, value = line.partition(" ")
            stat[key] = int(value)
        stats["memory"] = {
            "usage": _read_int(kernel, "memory", path, "memory.usage_in_bytes"),
            "max_usage": _read_int(kernel, "memory", path, "memory.max_usage_in_bytes"),
            "limit": _read_int(kernel, "memory", path, "memory.limit_in_bytes"),
            "failcnt": _read_int(kernel, "memory", path, "memory.failcnt"),
            "stats": stat,
        }
    if "cpuacct" in controllers:
        percpu = kernel.cgroup_read("cpuacct", path, "cpuacct.usage_percpu").split()
        ticks = dict(
            line.split()
            for line in kernel.cgroup_read("cpuacct", path, "cpuacct.stat").splitlines()
        )
        stats["cpu"] = {
            "total_usage_ns": _read_int(kernel, "cpuacct", path, "cpuacct.usage"),
            "percpu_usage_ns": [int(v) for v in percpu],
            "user_ticks": int(ticks.get("user", 0)),
            "system_ticks": int(ticks.get("system", 0)),
        }
    if "blkio" in controllers:  # only with a --blkio-weight (available_controllers)
        stats["blkio"] = _blkio(kernel, path)
    if "pids" in controllers:
        stats["pids"] = {
            "current": _read_int(kernel, "pids", path, "pids.current"),
            "limit": _read_int(kernel, "pids", path, "pids.max"),
        }
    return stats


def update_running(kernel: Kernel, cfg: ContainerConfig, res: dict) -> list[str]:
    """docker update on a running container: write its cgroups now. Returns warnings
    for what only the next start can apply (a controller it did not join)."""
    h = v2.hierarchy_of(available_controllers(kernel, cfg))
    if h is not None:
        return v2.update(kernel, h, cfg, res)
    path = cfg.cgroup_path
    warnings: list[str] = []

    def has(controller: str, name: str) -> bool:
        return kernel.cgroup_has(controller, path, name)

    memory, swap = int(res["memory"]), int(res["memory_swap"])
    if memory and has("memory", "memory.limit_in_bytes"):
        limit = "memory.limit_in_bytes"
        memsw = (
            "memory.memsw.limit_in_bytes" if has("memory", "memory.memsw.limit_in_bytes") else ""
        )
        order = [(limit, memory)] + ([(memsw, swap)] if memsw and swap else [])
        try:
            for name, value in order:
                kernel.cgroup_write("memory", path, name, str(value))
        except KernelError:
            # Raising the limit above the current memory+swap limit needs memsw first.
            for name, value in reversed(order):
                kernel.cgroup_write("memory", path, name, str(value))
    if res["memory_reservation"] and has("memory", "memory.soft_limit_in_bytes"):
        kernel.cgroup_write(
            "memory", path, "memory.soft_limit_in_bytes", str(res["memory_reservation"])
        )
    if res["cpu_shares"] and has("cpu", "cpu.shares"):
        kernel.cgroup_write("cpu", path, "cpu.shares", str(res["cpu_shares"]))
    if has("cpu", "cpu.cfs_quota_us"):
        kernel.cgroup_write("cpu", path, "cpu.cfs_period_us", str(res["cpu_period"]))
        kernel.cgroup_write("cpu", path, "cpu.cfs_quota_us", str(res["cpu_quota"]))
    if res["pids_limit"] and has("pids", "pids.max"):
        limit = "max" if int(res["pids_limit"]) < 0 else str(res["pids_limit"])
        kernel.cgroup_write("pids", path, "pids.max", limit)
    for key, name in (("cpuset_cpus", "cpuset.cpus"), ("cpuset_mems", "cpuset.mems")):
        if not res[key]:
            continue
        if has("cpuset", name):
            kernel.cgroup_write("cpuset", path, name, str(res[key]))
        else:
            warnings.append(
                f"{name} applies from the next start: the container was started without a "
                "cpuset cgroup"
            )
    if res["blkio_weight"]:
        knob = blkio_weight_file(kernel)
        if knob and has("blkio", knob):
            kernel.cgroup_write("blkio", path, knob, str(res["blkio_weight"]))
        else:
            warnings.append(
                "the blkio weight applies from the next start: the container was started "
                "without a blkio cgroup"
            )
    return warnings


def _blkio(kernel: Kernel, path: str) -> list[dict]:
    """blkio.throttle.io_service_bytes: "8:0 Read 4096" lines (the Total line skipped)."""
    out = []
    try:
        text = kernel.cgroup_read("blkio", path, "blkio.throttle.io_service_bytes")
    except KernelError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, _, minor = parts[0].partition(":")
            out.append(
                {
                    "major": int(major),
                    "minor": int(minor),
                    "op": parts[1].lower(),
                    "value": int(parts[2]),
                }
            )
    return out
