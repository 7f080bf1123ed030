"""docker run's isolation and resource settings: checked at create, turned into RunSpec
fields at start.

Every HostConfig field here is acted on or refused with dockerd's words (moby
daemon/daemon_unix.go verifyPlatformContainerResources, verifyPlatformContainerSettings,
docker/cli opts.ValidateSysctl); none is accepted and dropped.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.engine.models import HostConfig
from dockyard.errors import InvalidParameter
from dockyard.runtime.seccomp import parse_docker_profile
from dockyard.runtime.spec import Device

LINUX_MIN_MEMORY = 6 * 1024 * 1024

# docker/cli opts.ValidateSysctl: the sysctls of namespaces a container has its own of.
NAMESPACED_SYSCTLS = {
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
}
NAMESPACED_SYSCTL_PREFIXES = ("net.", "fs.mqueue.")

# ulimit names (docker's go-units) -> OCI rlimit types.
ULIMITS = {
    "core": "RLIMIT_CORE",
    "cpu": "RLIMIT_CPU",
    "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS",
    "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK",
}

# Mount options --tmpfs takes (the kernel's tmpfs ones and the generic flags).
_TMPFS_FLAGS = {"ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "strictatime",
                "relatime", "noatime"}  # fmt: skip
_TMPFS_DATA = {"size", "nr_blocks", "nr_inodes", "mode", "uid", "gid", "huge", "mpol"}

# Where dockerd looks for docker-init; Debian's tini-static is one static file.
INIT_CANDIDATES = (
    "/usr/bin/tini-static",
    "/usr/bin/docker-init",
    "/usr/libexec/docker/docker-init",
)


@dataclass
class SecuritySettings:
    seccomp_profile: dict | None = None  # Docker format; None = the default profile
    seccomp_unconfined: bool = False
    no_new_privileges: bool = False
    warnings: list[str] = field(default_factory=list)


def _go_bool(text: str) -> bool | None:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def security_settings(opts: list[str]) -> SecuritySettings:
    """--security-opt values (dockerd's parseSecurityOpt): seccomp=unconfined,
    seccomp=<profile JSON> (the CLI sends a file's content), no-new-privileges[=bool];
    apparmor=unconfined and label=disable are what already holds here."""
    out = SecuritySettings()
    for opt in opts:
        if opt == "no-new-privileges":
            out.no_new_privileges = True
            continue
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if not sep:
            raise InvalidParameter(f'invalid --security-opt 1: "{opt}"')
        if key == "no-new-privileges":
            flag = _go_bool(value)
            if flag is None:
                raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
            out.no_new_privileges = flag
        elif key == "seccomp" and value == "unconfined":
            out.seccomp_unconfined = True
        elif key == "seccomp":
            out.seccomp_profile = parse_docker_profile(value)
        elif (key, value) in (("apparmor", "unconfined"), ("label", "disable")):
            pass
        else:
            raise InvalidParameter(
                f'security option "{opt}" is not supported by dockyard (it honours '
                "no-new-privileges, seccomp=unconfined|<profile>, apparmor=unconfined and "
                "label=disable)"
            )
    return out


_SYSCTL_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")


def check_sysctl(name: str, network_mode: str, ipc_mode: str, uts_mode: str) -> None:
    # Written as /proc/sys/<a>/<b>/...: a "/" or ".." would lead elsewhere in it.
    if not _SYSCTL_NAME.fullmatch(name):
        raise InvalidParameter(f"invalid sysctl name {name!r}: expected dotted words (a.b.c)")
    if name in NAMESPACED_SYSCTLS or name.startswith("fs.mqueue."):
        if ipc_mode == "host":
            raise InvalidParameter(f"sysctl '{name}' is not allowed in host IPC namespace")
        return
    if name.startswith("net."):
        if network_mode == "host":
            raise InvalidParameter(f"sysctl '{name}' not allowed in host network namespace")
        return
    if name in ("kernel.hostname", "kernel.domainname"):
        raise InvalidParameter(
            f"sysctl '{name}' is not allowed: use --hostname / --domainname"
            if uts_mode != "host"
            else f"sysctl '{name}' is not allowed in host UTS namespace"
        )
    raise InvalidParameter(
        f"sysctl '{name}' is not whitelisted: it is not namespaced, so it would change the host"
    )


def parse_ulimits(items: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    out = []
    for u in items:
        name = str(u.get("Name", ""))
        if name not in ULIMITS:
            raise InvalidParameter(f"invalid ulimit type: {name}")
        soft, hard = int(u.get("Soft", 0)), int(u.get("Hard", 0))
        if soft > hard:
            raise InvalidParameter(
                f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )
        out.append((ULIMITS[name], soft, hard))
    return out


def check_tmpfs(path: str, options: str) -> None:
    if not path.startswith("/"):
        raise InvalidParameter(f"invalid mount path for tmpfs: {path}: it must be absolute")
    if path.rstrip("/") in ("", "/dev"):
        raise InvalidParameter(f"invalid mount path for tmpfs: {path}")
    for opt in filter(None, options.split(",")):
        key = opt.split("=", 1)[0]
        if opt not in _TMPFS_FLAGS and key not in _TMPFS_DATA:
            raise InvalidParameter(f"invalid tmpfs option {opt!r} for {path}")


def parse_device(d: dict[str, Any], stat_fn: Callable[[str], os.stat_result] = os.stat) -> Device:
    """One --device: the host node's type and numbers (dockerd's DevicesFromPath, for a
    node; a directory of nodes is refused)."""
    host = str(d.get("PathOnHost", ""))
    ctr = str(d.get("PathInContainer", "")) or host
    perms = str(d.get("CgroupPermissions", "")) or "rwm"
    if not perms or any(c not in "rwm" for c in perms) or len(set(perms)) != len(perms):
        raise InvalidParameter(f"invalid device mode: {perms}")
    if not ctr.startswith("/"):
        raise InvalidParameter(f"invalid device path in container: {ctr}: it must be absolute")
    try:
        st = stat_fn(host)
    except OSError as exc:
        raise InvalidParameter(
            f'error gathering device information while adding custom device "{host}": '
            f"{exc.strerror.lower() if exc.strerror else exc}"
        ) from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidParameter(
            f'error gathering device information while adding custom device "{host}": '
            "not a device node"
        )
    return Device(
        path=ctr,
        kind=kind,
        major=os.major(st.st_rdev),
        minor=os.minor(st.st_rdev),
        mode=stat.S_IMODE(st.st_mode),
        access=perms,
        uid=st.st_uid,
        gid=st.st_gid,
    )


def host_devices(root: str = "/dev") -> list[Device]:
    """Every device node of the host's /dev (--privileged), as dockerd's HostDevices:
    /dev/pts, /dev/shm and /dev/mqueue are the container's own."""
    found: list[Device] = []
    skip = {os.path.join(root, n) for n in ("pts", "shm", "mqueue", "console")}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path in skip:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append(
                    Device(
                        path=path,
                        kind="c" if stat.S_ISCHR(st.st_mode) else "b",
                        major=os.major(st.st_rdev),
                        minor=os.minor(st.st_rdev),
                        mode=stat.S_IMODE(st.st_mode),
                        uid=st.st_uid,
                        gid=st.st_gid,
                    )
                )
    return found


def init_binary() -> str:
    for path in INIT_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("tini-static")
    if found:
        return found
    raise InvalidParameter(
        "--init: no static init found (install Debian's tini, which ships /usr/bin/tini-static)"
    )


def _cpuset_list(text: str) -> set[int] | None:
    """cpuset list syntax "0-3,5", or None if malformed."""
    out: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if m is None:
            return None
        lo, hi = int(m[1]), int(m[2] or m[1])
        if lo > hi:
            return None
        out.update(range(lo, hi + 1))
    return out


def _host_cpuset(name: str) -> str:
    try:
        with open(f"/sys/fs/cgroup/cpuset/{name}") as f:
            return f.read().strip()
    except OSError:
        try:
            with open(
                f"/sys/devices/system/{'cpu' if name == 'cpuset.cpus' else 'node'}/online"
            ) as f:
                return f.read().strip()
        except OSError:
            return "0"


def blkio_weight_supported() -> bool:
    return any(
        os.path.exists(f"/sys/fs/cgroup/blkio/{f}") for f in ("blkio.weight", "blkio.bfq.weight")
    )


def check_resources(hc: HostConfig, update: bool = False) -> list[str]:
    """dockerd's verifyPlatformContainerResources, with its words; returns warnings."""
    warnings: list[str] = []
    if hc.memory and hc.memory < LINUX_MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if hc.memory > 0 and hc.memory_swap > 0 and hc.memory_swap < hc.memory:
        raise InvalidParameter(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if hc.memory == 0 and hc.memory_swap > 0 and not update:
        raise InvalidParameter(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        )
    if hc.memory_reservation and hc.memory_reservation < LINUX_MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if hc.memory > 0 and hc.memory_reservation > 0 and hc.memory < hc.memory_reservation:
        raise InvalidParameter(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    if hc.memory_swappiness is not None and hc.memory_swappiness != -1:
        raise InvalidParameter(
            "memory swappiness is not supported by dockyard (the container would get the "
            "host's): leave --memory-swappiness unset"
        )
    if hc.oom_kill_disable:
        raise InvalidParameter(
            "--oom-kill-disable is not supported by dockyard (a container without the OOM "
            "killer can hang the host)"
        )
    if hc.nano_cpus > 0 and hc.cpu_period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if hc.nano_cpus > 0 and hc.cpu_quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if hc.nano_cpus:
        nc = os.cpu_count() or 1
        if hc.nano_cpus < 0 or hc.nano_cpus > nc * 10**9:
            raise InvalidParameter(
                f"range of CPUs is from 0.01 to {nc}.00, as there are only {nc} CPUs available"
            )
    if hc.cpu_period and not 1000 <= hc.cpu_period <= 1000000:
        raise InvalidParameter(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if hc.cpu_quota > 0 and hc.cpu_quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if hc.cpu_shares < 0:
        raise InvalidParameter("invalid CPU shares: it must not be negative")
    for value, name, what in (
        (hc.cpuset_cpus, "cpuset.cpus", "CPUs"),
        (hc.cpuset_mems, "cpuset.mems", "memory nodes"),
    ):
        if not value:
            continue
        wanted = _cpuset_list(value)
        if wanted is None:
            raise InvalidParameter(
                f"Invalid value {value} for cpuset {'cpus' if what == 'CPUs' else 'mems'}"
            )
        available = _host_cpuset(name)
        if not wanted <= (_cpuset_list(available) or set()):
            raise InvalidParameter(
                f"Requested {what} are not available - requested {value}, available: {available}"
            )
    if hc.blkio_weight:
        if not 10 <= hc.blkio_weight <= 1000:
            raise InvalidParameter("Range of blkio weight is from 10 to 1000")
        if not blkio_weight_supported():
            # dockerd warns and drops it; a dropped limit is what this project refuses.
            raise InvalidParameter(
                "Your kernel does not support Block I/O weight or the cgroup is not mounted "
                "(no blkio.weight or blkio.bfq.weight: the block device's scheduler is neither "
                "CFQ nor BFQ): --blkio-weight cannot be enforced on this host"
            )
    return warnings


# HostConfig settings this engine does not enforce: refused by name when set.
_UNSUPPORTED = (
    ("kernel_memory", "KernelMemory (kernel memory accounting is deprecated)"),
    ("device_cgroup_rules", "DeviceCgroupRules (--device-cgroup-rule)"),
    ("blkio_weight_device", "BlkioWeightDevice (--blkio-weight-device)"),
    ("blkio_device_read_bps", "BlkioDeviceReadBps (--device-read-bps)"),
    ("blkio_device_write_bps", "BlkioDeviceWriteBps (--device-write-bps)"),
    ("blkio_device_read_i_ops", "BlkioDeviceReadIOps (--device-read-iops)"),
    ("blkio_device_write_i_ops", "BlkioDeviceWriteIOps (--device-write-iops)"),
    ("cpu_realtime_period", "CpuRealtimePeriod (--cpu-rt-period)"),
    ("cpu_realtime_runtime", "CpuRealtimeRuntime (--cpu-rt-runtime)"),
    ("device_requests", "DeviceRequests (--gpus)"),
)


def check_isolation(hc: HostConfig) -> list[str]:
    """Everything of docker run's isolation flags a create can check; warnings."""
    for name, what in _UNSUPPORTED:
        if getattr(hc, name):
            raise InvalidParameter(f"{what} is not supported by dockyard")
    warnings = check_resources(hc)
    security_settings(hc.security_opt or [])
    ipc = hc.ipc_mode
    if not (ipc in ("", "private", "shareable", "host", "none") or ipc.startswith("container:")):
        raise InvalidParameter(f"invalid IPC mode: {ipc}")
    if hc.pid_mode not in ("", "host") and not hc.pid_mode.startswith("container:"):
        raise InvalidParameter(f"invalid PID mode: {hc.pid_mode}")
    if hc.uts_mode not in ("", "host"):
        raise InvalidParameter(f"invalid UTS mode: {hc.uts_mode}")
    if hc.cgroupns_mode not in ("", "host"):
        raise InvalidParameter(
            f"cgroup namespace mode {hc.cgroupns_mode!r} is not supported by dockyard: "
            "containers share the host's cgroup namespace (dockerd's default on cgroup v1)"
        )
    if hc.userns_mode not in ("", "host"):
        raise InvalidParameter(
            f"user namespace mode {hc.userns_mode!r} is not supported by dockyard"
        )
    if hc.shm_size < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    if not -1000 <= hc.oom_score_adj <= 1000:
        raise InvalidParameter(
            f"Invalid value {hc.oom_score_adj}, range for oom score adj is [-1000, 1000]"
        )
    for name in hc.sysctls or {}:
        check_sysctl(name, hc.network_mode, ipc, hc.uts_mode)
    for path, options in (hc.tmpfs or {}).items():
        check_tmpfs(path, options)
    parse_ulimits(hc.ulimits or [])
    for d in hc.devices or []:
        parse_device(d)
    if hc.init:
        init_binary()
    return warnings


def _namespace_mode(mode: str, kind: str, pid_of: Callable[[str], int]) -> str:
    """RunSpec's "private" | "host" | /proc/<pid>/ns/<kind> for --ipc/--pid/--uts."""
    if mode == "host":
        return "host"
    if mode.startswith("container:"):
        return f"/proc/{pid_of(mode.split(':', 1)[1])}/ns/{kind}"
    return "private"


def run_spec_options(
    hc: HostConfig,
    pid_of: Callable[[str], int],
    read: Callable[[str], bytes | None],
) -> dict[str, Any]:
    """The RunSpec fields docker run's isolation flags set (checked at create)."""
    from dockyard.image.users import resolve_groups

    security = security_settings(hc.security_opt or [])
    ipc = _namespace_mode(hc.ipc_mode, "ipc", pid_of)
    # /dev/shm goes with the IPC namespace: the host's, or the other container's (copied
    # from its mount namespace by the init).
    ipc_shm = "/dev/shm" if hc.ipc_mode == "host" else ""
    ipc_shm_from = ipc.replace("/ns/ipc", "/ns/mnt") if ipc.startswith("/proc/") else ""
    devices = [parse_device(d) for d in hc.devices or []]
    if hc.privileged:
        taken = {d.path for d in devices}
        devices += [d for d in host_devices() if d.path not in taken]
    cpu_quota, cpu_period = hc.cpu_quota, hc.cpu_period
    if hc.nano_cpus:
        # --cpus: a quota over dockerd's 100 ms period.
        cpu_period = 100000
        cpu_quota = hc.nano_cpus * cpu_period // 10**9
    return {
        "seccomp_profile": security.seccomp_profile,
        "seccomp_unconfined": security.seccomp_unconfined,
        "no_new_privileges": security.no_new_privileges,
        "tmpfs": dict(hc.tmpfs or {}),
        "devices": devices,
        "rlimits": parse_ulimits(hc.ulimits or []),
        "sysctls": dict(hc.sysctls or {}),
        "shm_size": hc.shm_size,
        "ipc": ipc,
        "ipc_shm": ipc_shm,
        "ipc_shm_from": ipc_shm_from,
        "pid": _namespace_mode(hc.pid_mode, "pid", pid_of),
        "uts": "host" if hc.uts_mode == "host" else "private",
        "init_path": init_binary() if hc.init else "",
        "oom_score_adj": hc.oom_score_adj,
        "cpu_quota": cpu_quota,
        "cpu_period": cpu_period,
        "cpuset_cpus": hc.cpuset_cpus,
        "cpuset_mems": hc.cpuset_mems,
        "memory_reservation": hc.memory_reservation,
        "blkio_weight": hc.blkio_weight,
        "extra_gids": resolve_groups(list(hc.group_add or []), read),
    }
