"""Reading an OCI bundle: config.json parsed into the typed ContainerConfig.

The container init and the monitor work from this, never from the raw dict.
"""

from __future__ import annotations

import os

from dockyard.errors import RuntimeFailure
from dockyard.kernel import flags as K
from dockyard.runtime import lightjson as json
from dockyard.runtime.oci_names import (
    ANNOTATION_LOWERDIR,
    ANNOTATION_OPEN_STDIN,
    ANNOTATION_SHM_FROM,
    ANNOTATION_UPPERDIR,
    ANNOTATION_WORKDIR,
)
from dockyard.runtime.record import field, record

# mount(8) option -> (flags to set, flags to clear), as runc parses them.
_FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    "ro": (K.MS_RDONLY, 0),
    "rw": (0, K.MS_RDONLY),
    "nosuid": (K.MS_NOSUID, 0),
    "suid": (0, K.MS_NOSUID),
    "nodev": (K.MS_NODEV, 0),
    "dev": (0, K.MS_NODEV),
    "noexec": (K.MS_NOEXEC, 0),
    "exec": (0, K.MS_NOEXEC),
    "bind": (K.MS_BIND, 0),
    "rbind": (K.MS_BIND | K.MS_REC, 0),
    "strictatime": (K.MS_STRICTATIME, 0),
    "relatime": (K.MS_RELATIME, 0),
    "noatime": (K.MS_NOATIME, 0),
}
_PROPAGATION: dict[str, int] = {
    "private": K.MS_PRIVATE,
    "rprivate": K.MS_PRIVATE | K.MS_REC,
    "slave": K.MS_SLAVE,
    "rslave": K.MS_SLAVE | K.MS_REC,
}

CGROUP_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "devices", "freezer")


def cgroup_path_error(path: str) -> str | None:
    """Why a cgroup path (relative to each controller's root) is refused, or None."""
    if "\0" in path or "\n" in path:
        return "control characters are not allowed"
    if ".." in path.split("/"):
        return '".." is not allowed: the cgroup parent must stay inside the cgroup hierarchy'
    return None


@record
class MountEntry:
    destination: str
    fstype: str
    source: str
    flags: int
    data: str
    propagation: int = 0

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & K.MS_BIND)


@record
class DeviceRule:
    allow: bool
    kind: str  # "a", "c" or "b"
    major: int | None
    minor: int | None
    access: str

    def cgroup_line(self) -> str:
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        if self.kind == "a":
            return "a"
        return f"{self.kind} {major}:{minor} {self.access}"


@record
class Resources:
    memory: int = 0
    memory_swap: int = 0  # -1 unlimited, 0 not set
    cpu_shares: int = 0
    pids_limit: int = 0  # 0 not set, -1 unlimited
    devices: list[DeviceRule] = field(default_factory=list)
    memory_reservation: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    blkio_weight: int = 0


@record
class DeviceNode:
    """linux.devices: a node the init creates in the container's /dev."""

    path: str
    kind: str  # "c" | "b"
    major: int
    minor: int
    mode: int
    uid: int
    gid: int


@record
class ContainerConfig:
    bundle: str
    rootfs: str
    readonly_rootfs: bool
    lowerdirs: list[str]
    upperdir: str
    workdir: str
    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    additional_gids: list[int]
    terminal: bool
    open_stdin: bool
    hostname: str
    domainname: str
    unshare_flags: int  # namespaces created by the init (pid is done by the monitor)
    new_netns: bool
    netns_path: str
    mounts: list[MountEntry]
    bounding: list[str]
    effective: list[str]
    permitted: list[str]
    inheritable: list[str]
    no_new_privileges: bool
    cgroup_path: str  # relative to each controller's root, e.g. "dockyard/<id>"
    resources: Resources
    masked_paths: list[str]
    readonly_paths: list[str]
    oom_score_adj: int | None = None
    seccomp: dict | None = None  # OCI linux.seccomp
    annotations: dict | None = None  # org.dockyard.* the monitor reads (log rotation)
    # Its BPF program, as the daemon compiled it for this config.json (None: compile it).
    seccomp_program: bytes | None = None
    rlimits: list[tuple[str, int, int]] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    device_nodes: list[DeviceNode] = field(default_factory=list)
    pid_mode: str = "private"  # "private" | "host" | path of a pid namespace to join
    ipc_path: str = ""  # an ipc namespace to join
    shm_from: str = ""  # a mount namespace whose /dev/shm to share (--ipc container:)


def parse_mount_options(options: list[str]) -> tuple[int, int, str]:
    """(flags, propagation flags, data) from OCI/mount(8) options."""
    mount_flags = 0
    propagation = 0
    data: list[str] = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            set_, clear = _FLAG_OPTIONS[opt]
            mount_flags = (mount_flags | set_) & ~clear
        elif opt in _PROPAGATION:
            propagation = _PROPAGATION[opt]
        else:
            data.append(opt)
    return mount_flags, propagation, ",".join(data)


def _cgroup_path(path: str) -> str:
    error = cgroup_path_error(path)
    if error:
        raise ValueError(f"cgroupsPath {path!r}: {error}")
    return "/".join(p for p in path.split("/") if p not in ("", "."))


def _caps(process: dict, kind: str) -> list[str]:
    return list(process.get("capabilities", {}).get(kind) or [])


def load_config(bundle: str) -> ContainerConfig:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            oci = json.load(f)
    except (OSError, ValueError) as exc:
        raise RuntimeFailure(f"cannot read {path}: {exc}") from None
    cfg = config_from_oci(bundle, oci)
    attach_seccomp_program(cfg, oci)
    return cfg


def attach_seccomp_program(cfg: ContainerConfig, oci: dict, cache_dir: str = "") -> None:
    """The BPF program of the config's seccomp profile, before the init pivots away
    from the libraries: what the daemon compiled into config.json, else what is in
    `cache_dir` (dockyard-runtime's --root), else compiled here (and cached there)."""
    if not cfg.seccomp:
        return
    from dockyard.runtime import seccomp

    compiled = (oci.get("annotations") or {}).get(seccomp.ANNOTATION_PROGRAM)
    cfg.seccomp_program = seccomp.program_from_annotation(cfg.seccomp, compiled)
    if cfg.seccomp_program is None:
        cfg.seccomp_program = seccomp.compile_cached(cfg.seccomp, cache_dir)


def config_from_oci(bundle: str, oci: dict) -> ContainerConfig:
    try:
        return _config_from_oci(bundle, oci)
    except (KeyError, TypeError, ValueError) as exc:
        raise RuntimeFailure(f"invalid OCI config in {bundle}: {exc!r}") from None


def _config_from_oci(bundle: str, oci: dict) -> ContainerConfig:
    process = oci["process"]
    user = process.get("user", {})
    root = oci.get("root", {"path": "rootfs"})
    linux = oci.get("linux", {})
    annotations = oci.get("annotations") or {}

    unshare_flags = 0
    new_netns = False
    netns_path = ""
    ipc_path = ""
    pid_mode = "host"  # no pid namespace listed: the host's (--pid host)
    for ns in linux.get("namespaces", []):
        kind, ns_path = ns["type"], ns.get("path", "")
        if kind == "network":
            if ns_path:
                netns_path = ns_path
            else:
                new_netns = True
                unshare_flags |= K.CLONE_NEWNET
        elif kind in ("mount", "uts", "ipc", "cgroup") and not ns_path:
            unshare_flags |= {
                "mount": K.CLONE_NEWNS,
                "uts": K.CLONE_NEWUTS,
                "ipc": K.CLONE_NEWIPC,
                "cgroup": K.CLONE_NEWCGROUP,
            }[kind]
        elif kind == "pid":
            pid_mode = ns_path or "private"  # the monitor unshares or joins it for its child
        elif kind == "ipc":
            ipc_path = ns_path
        else:
            raise ValueError(f"unsupported namespace {ns}")
    if not unshare_flags & K.CLONE_NEWNS:
        raise ValueError("a mount namespace is required")

    mounts = []
    for m in oci.get("mounts", []):
        fstype = m.get("type") or ""
        mflags, prop, data = parse_mount_options(list(m.get("options", [])))
        if fstype == "bind":
            mflags |= K.MS_BIND
            fstype = ""
        mounts.append(MountEntry(m["destination"], fstype, m.get("source", ""), mflags, data, prop))

    res = linux.get("resources", {})
    devices = [
        DeviceRule(
            allow=bool(d.get("allow")),
            kind=d.get("type", "a"),
            major=d.get("major"),
            minor=d.get("minor"),
            access=d.get("access", "rwm"),
        )
        for d in res.get("devices", [])
    ]
    resources = Resources(
        memory=int(res.get("memory", {}).get("limit", 0) or 0),
        memory_swap=int(res.get("memory", {}).get("swap", 0) or 0),
        cpu_shares=int(res.get("cpu", {}).get("shares", 0) or 0),
        pids_limit=int(res.get("pids", {}).get("limit", 0) or 0),
        devices=devices,
        memory_reservation=int(res.get("memory", {}).get("reservation", 0) or 0),
        cpu_quota=int(res.get("cpu", {}).get("quota", 0) or 0),
        cpu_period=int(res.get("cpu", {}).get("period", 0) or 0),
        cpuset_cpus=str(res.get("cpu", {}).get("cpus", "") or ""),
        cpuset_mems=str(res.get("cpu", {}).get("mems", "") or ""),
        blkio_weight=int(res.get("blockIO", {}).get("weight", 0) or 0),
    )
    root_path = root.get("path", "rootfs")
    lower = annotations.get(ANNOTATION_LOWERDIR, "")
    return ContainerConfig(
        bundle=bundle,
        rootfs=os.path.join(bundle, root_path),
        readonly_rootfs=bool(root.get("readonly", False)),
        lowerdirs=lower.split(":") if lower else [],
        upperdir=annotations.get(ANNOTATION_UPPERDIR, ""),
        workdir=annotations.get(ANNOTATION_WORKDIR, ""),
        args=list(process["args"]),
        env=list(process.get("env", [])),
        cwd=process.get("cwd", "/") or "/",
        uid=int(user.get("uid", 0)),
        gid=int(user.get("gid", 0)),
        additional_gids=[int(g) for g in user.get("additionalGids") or []],
        terminal=bool(process.get("terminal", False)),
        open_stdin=annotations.get(ANNOTATION_OPEN_STDIN) == "true",
        annotations=dict(annotations),
        hostname=oci.get("hostname", ""),
        domainname=oci.get("domainname", ""),
        unshare_flags=unshare_flags,
        new_netns=new_netns,
        netns_path=netns_path,
        mounts=mounts,
        bounding=_caps(process, "bounding"),
        effective=_caps(process, "effective"),
        permitted=_caps(process, "permitted"),
        inheritable=_caps(process, "inheritable"),
        no_new_privileges=bool(process.get("noNewPrivileges", False)),
        cgroup_path=_cgroup_path(
            linux.get("cgroupsPath") or f"/dockyard/{os.path.basename(bundle)}"
        ),
        resources=resources,
        masked_paths=list(linux.get("maskedPaths", [])),
        readonly_paths=list(linux.get("readonlyPaths", [])),
        oom_score_adj=process.get("oomScoreAdj"),
        seccomp=linux.get("seccomp"),
        rlimits=[
            (str(r["type"]), int(r["soft"]), int(r["hard"])) for r in process.get("rlimits") or []
        ],
        sysctls={str(k): str(v) for k, v in (linux.get("sysctl") or {}).items()},
        device_nodes=[
            DeviceNode(
                path=str(d["path"]),
                kind=str(d.get("type", "c")),
                major=int(d["major"]),
                minor=int(d["minor"]),
                mode=int(d.get("fileMode", 0o666)),
                uid=int(d.get("uid", 0)),
                gid=int(d.get("gid", 0)),
            )
            for d in linux.get("devices") or []
        ],
        pid_mode=pid_mode,
        ipc_path=ipc_path,
        shm_from=annotations.get(ANNOTATION_SHM_FROM, ""),
    )
