"""docker update: new limits for a container, checked as at create, applied to its
cgroups at once when it runs, and kept for its next starts."""

from __future__ import annotations

import msgspec

from dockyard.engine.isolation import check_resources
from dockyard.engine.models import HostConfig, UpdateConfig
from dockyard.errors import InvalidParameter

# UpdateConfig field -> HostConfig field (same names): what an update may change.
_RESOURCES = (
    "cpu_shares",
    "memory",
    "memory_swap",
    "memory_reservation",
    "cpu_period",
    "cpu_quota",
    "nano_cpus",
    "cpuset_cpus",
    "cpuset_mems",
    "blkio_weight",
)


def merged_host_config(hc: HostConfig, upd: UpdateConfig) -> tuple[HostConfig, list[str]]:
    """The HostConfig after the update (a copy), and dockerd's warnings."""
    if upd.kernel_memory:
        raise InvalidParameter(
            "Kernel memory limit is not supported: kernel memory accounting is deprecated "
            "(dockerd ignores it since 20.10)"
        )
    new = msgspec.structs.replace(hc)
    for name in _RESOURCES:
        value = getattr(upd, name)
        if value:
            setattr(new, name, value)
    if upd.nano_cpus:  # --cpus replaces an explicit period/quota, as in dockerd
        new.cpu_period = new.cpu_quota = 0
    if upd.cpu_period or upd.cpu_quota:
        new.nano_cpus = 0
    if upd.pids_limit is not None:
        new.pids_limit = upd.pids_limit if upd.pids_limit > 0 else -1
    if upd.memory and not upd.memory_swap and hc.memory_swap > 0 and hc.memory_swap < upd.memory:
        # dockerd: a new memory limit above the old swap limit takes the swap limit along.
        new.memory_swap = 0
    if upd.restart_policy is not None and upd.restart_policy.name:
        if hc.auto_remove and upd.restart_policy.name != "no":
            raise InvalidParameter(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
            )
        if upd.restart_policy.name not in ("no", "always", "unless-stopped", "on-failure"):
            raise InvalidParameter(
                f"invalid restart policy: unknown policy '{upd.restart_policy.name}'"
            )
        new.restart_policy = upd.restart_policy
    warnings = check_resources(new, update=True)
    return new, warnings


def live_resources(hc: HostConfig) -> dict[str, int | str]:
    """What the running container's cgroups get (RunSpec's units)."""
    cpu_quota, cpu_period = hc.cpu_quota, hc.cpu_period
    if hc.nano_cpus:
        cpu_period = 100000
        cpu_quota = hc.nano_cpus * cpu_period // 10**9
    return {
        "memory": hc.memory,
        "memory_swap": (2 * hc.memory if hc.memory and hc.memory_swap == 0 else hc.memory_swap),
        "memory_reservation": hc.memory_reservation,
        "cpu_shares": hc.cpu_shares,
        "cpu_quota": cpu_quota or -1,  # -1: no quota (a --cpus removed)
        "cpu_period": cpu_period or 100000,
        "cpuset_cpus": hc.cpuset_cpus,
        "cpuset_mems": hc.cpuset_mems,
        "blkio_weight": hc.blkio_weight,
        "pids_limit": hc.pids_limit or 0,
    }
