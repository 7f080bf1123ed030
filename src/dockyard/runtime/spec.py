"""RunSpec: the typed input the engine gives the runtime, and its OCI rendering.

The engine builds a RunSpec; `to_oci` turns it into an OCI runtime-spec
config.json (so runc or crun could run the same bundle, given a mounted
rootfs). What OCI has no field for travels as `org.dockyard.*` annotations:
the overlay layers (the container init mounts the overlay inside its own mount
namespace, so it vanishes with the container) and whether stdin stays open.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from dockyard.kernel.flags import CAPABILITIES
from dockyard.runtime.atomic_write import write_atomic
from dockyard.runtime.oci_names import (  # noqa: F401 - re-exported: spec's names before the split
    ANNOTATION_LOWERDIR,
    ANNOTATION_OPEN_STDIN,
    ANNOTATION_SHM_FROM,
    ANNOTATION_UPPERDIR,
    ANNOTATION_WORKDIR,
    DEFAULT_PATH,
    OCI_VERSION,
)
from dockyard.runtime.seccomp import (
    ANNOTATION_PROGRAM,
    default_profile,
    program_annotation,
    resolve,
)

# Docker's default capability set (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

# Docker's default masked and read-only paths (moby oci/defaults.go).
MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]

# The devices every container may use (moby oci/defaults.go + runc's defaults).
_ALLOWED_DEVICES = [
    ("c", None, None, "m"),  # mknod any char device (using it is still denied)
    ("b", None, None, "m"),
    ("c", 1, 3, "rwm"),  # null
    ("c", 1, 8, "rwm"),  # random
    ("c", 1, 7, "rwm"),  # full
    ("c", 5, 0, "rwm"),  # tty
    ("c", 1, 5, "rwm"),  # zero
    ("c", 1, 9, "rwm"),  # urandom
    ("c", 136, None, "rwm"),  # /dev/pts/*
    ("c", 5, 2, "rwm"),  # ptmx
]


DEFAULT_SHM_SIZE = 64 << 20


def default_mounts(*, privileged: bool = False) -> list[dict]:
    """The kernel filesystems every container gets, as Docker mounts them (the one
    list: the daemon's specs and `dockyard-runtime spec`'s template both use it)."""
    sys_options = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options},
        # The container's own cgroup directories, as runc shows them on cgroup v1.
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": sys_options,
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
    ]


def shm_tmpfs(size: int) -> dict:
    """The container's private /dev/shm."""
    return {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={size}"],
    }


@dataclass
class BindMount:
    source: str
    destination: str
    readonly: bool = False


@dataclass
class Device:
    """A host device node given to the container (--device HOST[:CTR[:rwm]])."""

    path: str  # inside the container
    kind: str  # "c" or "b"
    major: int
    minor: int
    mode: int  # permission bits of the host node
    access: str = "rwm"  # what the device cgroup allows
    uid: int = 0
    gid: int = 0


@dataclass
class RunSpec:
    args: list[str]
    env: list[str]  # "K=V"
    hostname: str
    rootfs_lower: list[str]  # image layer dirs, top-most first (overlay lowerdir order)
    rootfs_upper: str  # container's upper dir (exists)
    rootfs_work: str  # overlay workdir (exists)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    terminal: bool = False
    open_stdin: bool = False
    readonly_rootfs: bool = False
    network: str = "private"  # "private" | "host" | path of a netns to join
    mounts: list[BindMount] = field(default_factory=list)
    cgroup_parent: str = "dockyard"
    memory: int = 0  # bytes, 0 = unlimited
    memory_swap: int = 0  # bytes, 0 = Docker's default (2 x memory), -1 = unlimited
    cpu_shares: int = 0
    pids_limit: int = 0  # 0 = unlimited, -1 = unlimited
    capabilities: list[str] | None = None  # None = Docker's default set
    privileged: bool = False
    # Docker-format seccomp profile (--security-opt seccomp=...); None = Docker's default.
    seccomp_profile: dict | None = None
    seccomp_unconfined: bool = False
    no_new_privileges: bool = False
    tmpfs: dict[str, str] = field(default_factory=dict)  # path -> mount options
    devices: list[Device] = field(default_factory=list)
    rlimits: list[tuple[str, int, int]] = field(default_factory=list)  # RLIMIT_X, soft, hard
    sysctls: dict[str, str] = field(default_factory=dict)
    shm_size: int = 0  # bytes, 0 = Docker's 64 MiB
    ipc: str = "private"  # "private" | "host" | path of an ipc namespace to join
    ipc_shm: str = ""  # the host's /dev/shm to bind (--ipc host)
    ipc_shm_from: str = ""  # a mount namespace whose /dev/shm to share (--ipc container:)
    pid: str = "private"  # "private" | "host" | path of a pid namespace to join
    uts: str = "private"  # "private" | "host"
    init_path: str = ""  # --init: the static init bound at /sbin/docker-init
    oom_score_adj: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    memory_reservation: int = 0
    blkio_weight: int = 0
    domainname: str = ""

    def to_oci(self, container_id: str) -> dict:
        """A config.json for runtime-spec 1.0.2."""
        if self.privileged:
            caps = sorted(CAPABILITIES, key=CAPABILITIES.__getitem__)
        elif self.capabilities is None:
            caps = list(DEFAULT_CAPABILITIES)
        else:
            caps = [
                c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper()
                for c in self.capabilities
            ]
        process = {
            "terminal": self.terminal,
            "user": {
                "uid": self.uid,
                "gid": self.gid,
                "additionalGids": list(self.additional_gids),
            },
            "args": (["/sbin/docker-init", "--"] if self.init_path else []) + list(self.args),
            "env": list(self.env),
            "cwd": self.cwd or "/",
            # Inheritable stays empty as in Docker >= 20.10.14 (CVE-2022-24769).
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            "noNewPrivileges": self.no_new_privileges,
            # Containers start at 0 even when the daemon protects itself (dockerd runs at -500).
            "oomScoreAdj": self.oom_score_adj,
        }
        if self.rlimits:
            process["rlimits"] = [
                {"type": kind, "soft": soft, "hard": hard} for kind, soft, hard in self.rlimits
            ]
        namespaces: list[dict[str, str]] = [{"type": "mount"}]
        for kind, mode in (("pid", self.pid), ("ipc", self.ipc), ("uts", self.uts)):
            if mode == "private":
                namespaces.append({"type": kind})
            elif mode != "host":
                namespaces.append({"type": kind, "path": mode})
        if self.network == "private":
            namespaces.append({"type": "network"})
        elif self.network != "host":
            namespaces.append({"type": "network", "path": self.network})

        mounts = default_mounts(privileged=self.privileged)
        if self.ipc_shm:
            mounts.append(
                {
                    "destination": "/dev/shm",
                    "type": "bind",
                    "source": self.ipc_shm,
                    "options": ["rbind", "rprivate"],
                }
            )
        elif not self.ipc_shm_from:
            mounts.append(shm_tmpfs(self.shm_size or DEFAULT_SHM_SIZE))
        if self.init_path:
            mounts.append(
                {
                    "destination": "/sbin/docker-init",
                    "type": "bind",
                    "source": self.init_path,
                    "options": ["rbind", "rprivate", "ro"],
                }
            )
        own: list[dict] = []
        for path, opts in self.tmpfs.items():
            # Docker's defaults, which the user's options (exec, size=...) amend.
            options = ["noexec", "nosuid", "nodev"] + [o for o in opts.split(",") if o]
            own.append(
                {"destination": path, "type": "tmpfs", "source": "tmpfs", "options": options}
            )
        for m in self.mounts:
            options = ["rbind", "rprivate"] + (["ro"] if m.readonly else [])
            own.append(
                {
                    "destination": m.destination,
                    "type": "bind",
                    "source": m.source,
                    "options": options,
                }
            )
        # dockerd's sortMounts: fewer path components first, so a volume on /etc does not
        # hide the /etc/hosts bind above it (the sort is stable: equal depths keep order).
        own.sort(key=lambda m: m["destination"].rstrip("/").count("/"))
        mounts += own

        resources: dict = {}
        if self.memory > 0:
            memory: dict[str, int] = {"limit": self.memory}
            if self.memory_swap > 0:
                memory["swap"] = self.memory_swap
            elif self.memory_swap == 0:
                memory["swap"] = 2 * self.memory  # Docker: swap defaults to the memory limit
            else:
                memory["swap"] = -1
            resources["memory"] = memory
        if self.memory_reservation > 0:
            resources.setdefault("memory", {})["reservation"] = self.memory_reservation
        cpu: dict = {}
        if self.cpu_shares > 0:
            cpu["shares"] = self.cpu_shares
        if self.cpu_quota:
            cpu["quota"] = self.cpu_quota
        if self.cpu_period:
            cpu["period"] = self.cpu_period
        if self.cpuset_cpus:
            cpu["cpus"] = self.cpuset_cpus
        if self.cpuset_mems:
            cpu["mems"] = self.cpuset_mems
        if cpu:
            resources["cpu"] = cpu
        if self.blkio_weight:
            resources["blockIO"] = {"weight": self.blkio_weight}
        if self.pids_limit != 0:
            resources["pids"] = {"limit": self.pids_limit}
        if self.privileged:
            resources["devices"] = [{"allow": True, "access": "rwm"}]
        else:
            devices: list[dict] = [{"allow": False, "access": "rwm"}]
            for kind, major, minor, access in _ALLOWED_DEVICES:
                rule: dict = {"allow": True, "type": kind, "access": access}
                if major is not None:
                    rule["major"] = major
                if minor is not None:
                    rule["minor"] = minor
                devices.append(rule)
            for d in self.devices:
                devices.append(
                    {
                        "allow": True,
                        "type": d.kind,
                        "major": d.major,
                        "minor": d.minor,
                        "access": d.access,
                    }
                )
            resources["devices"] = devices

        linux: dict = {
            "namespaces": namespaces,
            "resources": resources,
            "cgroupsPath": f"/{self.cgroup_parent.strip('/')}/{container_id}",
        }
        if self.devices:
            linux["devices"] = [
                {
                    "path": d.path,
                    "type": d.kind,
                    "major": d.major,
                    "minor": d.minor,
                    "fileMode": d.mode,
                    "uid": d.uid,
                    "gid": d.gid,
                }
                for d in self.devices
            ]
        if self.sysctls:
            linux["sysctl"] = dict(self.sysctls)
        if not self.privileged:
            linux["maskedPaths"] = list(MASKED_PATHS)
            linux["readonlyPaths"] = list(READONLY_PATHS)
        if not self.privileged and not self.seccomp_unconfined:
            # Resolved against the bounding set, as dockerd does (capability-gated groups).
            linux["seccomp"] = (
                resolve(self.seccomp_profile, caps)
                if self.seccomp_profile is not None
                else default_profile(caps)
            )

        return {
            "ociVersion": OCI_VERSION,
            "process": process,
            "root": {"path": "rootfs", "readonly": self.readonly_rootfs},
            "hostname": self.hostname,
            **({"domainname": self.domainname} if self.domainname else {}),
            "mounts": mounts,
            "linux": linux,
            "annotations": {
                ANNOTATION_LOWERDIR: ":".join(self.rootfs_lower),
                ANNOTATION_UPPERDIR: self.rootfs_upper,
                ANNOTATION_WORKDIR: self.rootfs_work,
                ANNOTATION_OPEN_STDIN: "true" if self.open_stdin else "false",
                **({ANNOTATION_SHM_FROM: self.ipc_shm_from} if self.ipc_shm_from else {}),
            },
        }


@dataclass
class ExecSpec:
    """A process to run inside a running container (docker exec).

    Unset fields (None, "") take the container's values from its config.json.
    """

    args: list[str]
    env: list[str] = field(default_factory=list)  # the full environment ("K=V")
    cwd: str = ""
    uid: int | None = None
    gid: int | None = None
    additional_gids: list[int] | None = None
    terminal: bool = False
    open_stdin: bool = False
    privileged: bool = False

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict) -> ExecSpec:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    @classmethod
    def checked(cls, raw: object) -> ExecSpec:
        """from_json for a spec from a client of a monitor: ValueError unless every
        field has its type (a command must not reach fork with a str for a list)."""
        if not isinstance(raw, dict) or "args" not in raw:
            raise ValueError("an exec needs its args")
        spec = cls.from_json(raw)

        def strings(v: object) -> bool:
            return isinstance(v, list) and all(isinstance(x, str) for x in v)

        def ids(v: object) -> bool:
            return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)

        if not (strings(spec.args) and spec.args and strings(spec.env)):
            raise ValueError("args and env are lists of strings")
        if not isinstance(spec.cwd, str) or not ids(spec.uid) or not ids(spec.gid):
            raise ValueError("cwd is a string, uid and gid are ids")
        gids = spec.additional_gids
        if gids is not None and not (
            isinstance(gids, list) and all(g is not None and ids(g) for g in gids)
        ):
            raise ValueError("additional_gids is a list of ids")
        if not all(type(v) is bool for v in (spec.terminal, spec.open_stdin, spec.privileged)):
            raise ValueError("terminal, open_stdin and privileged are booleans")
        return spec


def write_bundle(bundle_dir: str, oci: dict) -> None:
    """Write <bundle>/config.json atomically and create the rootfs mount point.

    Compact JSON (json's C encoder; indent= takes the pure-Python one, 6x
    slower) and no fsync: the engine rewrites config.json before every start,
    and no container outlives a power loss.
    """
    os.makedirs(bundle_dir, exist_ok=True)
    os.makedirs(os.path.join(bundle_dir, oci.get("root", {}).get("path", "rootfs")), exist_ok=True)
    # The seccomp program, compiled here once per distinct profile (cached): the
    # container init only loads it.
    profile = oci.get("linux", {}).get("seccomp")
    if profile:
        program = program_annotation(profile)
        if program is not None:
            oci = {
                **oci,
                "annotations": {**oci.get("annotations", {}), ANNOTATION_PROGRAM: program},
            }
    data = json.dumps(oci, separators=(",", ":")).encode()
    write_atomic(os.path.join(bundle_dir, "config.json"), data, durable=False)
