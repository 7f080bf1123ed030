"""Typed models of the engine's resources, named and shaped as the Engine API names them.

msgspec Structs with `rename="pascal"` give Docker's key names (`working_dir` is
`WorkingDir`) for free, decode request bodies with type checks, and encode the
records the store keeps. Where Docker's spelling is not plain PascalCase the
field says so with `name=`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import field

from dockyard.engine.network_models import EndpointIPAMConfig
from dockyard.network.bridge import Endpoint

# Docker accepts both "echo hi" and ["echo", "hi"] for Cmd/Entrypoint (strslice).
StrSlice = list[str] | str | None


class PortBinding(msgspec.Struct, rename="pascal", omit_defaults=True):
    host_ip: str = field(default="", name="HostIp")
    host_port: str = ""


class RestartPolicy(msgspec.Struct, rename="pascal"):
    name: str = "no"
    maximum_retry_count: int = 0


class LogConfig(msgspec.Struct, rename="pascal"):
    type: str = "json-file"
    # Compose sends `"Config": null` for "no options" (Go's nil map); check() makes it {}.
    config: dict[str, str] | None = field(default_factory=dict)


class ContainerConfig(msgspec.Struct, rename="pascal"):
    """The `Config` of a create request and of `inspect`."""

    hostname: str = ""
    domainname: str = ""
    user: str = ""
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    exposed_ports: dict[str, dict[str, Any]] | None = None
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: list[str] | None = None
    cmd: StrSlice = None
    healthcheck: dict[str, Any] | None = None
    args_escaped: bool | None = None
    image: str = ""
    volumes: dict[str, dict[str, Any]] | None = None
    working_dir: str = ""
    entrypoint: StrSlice = None
    network_disabled: bool | None = None
    mac_address: str | None = None
    on_build: list[str] | None = field(default=None, name="OnBuild")
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    shell: list[str] | None = None


class HostConfig(msgspec.Struct, rename="pascal"):
    """The `HostConfig` of a create request and of `inspect` (the parts Dockyard honours
    plus the ones clients send and expect echoed back)."""

    binds: list[str] | None = None
    container_id_file: str = field(default="", name="ContainerIDFile")
    log_config: LogConfig = field(default_factory=LogConfig)
    network_mode: str = ""
    port_bindings: dict[str, list[PortBinding] | None] | None = None
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    auto_remove: bool = False
    volume_driver: str = ""
    volumes_from: list[str] | None = None
    mounts: list[dict[str, Any]] | None = None
    console_size: list[int] | None = None
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    cgroupns_mode: str = ""
    dns: list[str] | None = None
    dns_options: list[str] | None = None
    dns_search: list[str] | None = None
    extra_hosts: list[str] | None = None
    group_add: list[str] | None = None
    ipc_mode: str = ""
    cgroup: str = ""
    links: list[str] | None = None
    oom_score_adj: int = 0
    pid_mode: str = ""
    privileged: bool = False
    publish_all_ports: bool = False
    readonly_rootfs: bool = False
    security_opt: list[str] | None = None
    tmpfs: dict[str, str] | None = None
    uts_mode: str = field(default="", name="UTSMode")
    userns_mode: str = ""
    shm_size: int = 0
    sysctls: dict[str, str] | None = None
    runtime: str = ""
    isolation: str = ""
    # Resources
    cpu_shares: int = 0
    memory: int = 0
    cgroup_parent: str = ""
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    memory_reservation: int = 0
    memory_swap: int = 0
    memory_swappiness: int | None = None
    nano_cpus: int = field(default=0, name="NanoCpus")
    oom_kill_disable: bool | None = None
    init: bool | None = None
    pids_limit: int | None = None
    ulimits: list[dict[str, Any]] | None = None
    devices: list[dict[str, Any]] | None = None
    blkio_weight: int = 0
    # Parsed so that a value is refused by name (engine/isolation.py), not dropped.
    kernel_memory: int = 0
    device_cgroup_rules: list[str] | None = None
    blkio_weight_device: list[dict[str, Any]] | None = None
    blkio_device_read_bps: list[dict[str, Any]] | None = None
    blkio_device_write_bps: list[dict[str, Any]] | None = None
    blkio_device_read_i_ops: list[dict[str, Any]] | None = field(
        default=None, name="BlkioDeviceReadIOps"
    )
    blkio_device_write_i_ops: list[dict[str, Any]] | None = field(
        default=None, name="BlkioDeviceWriteIOps"
    )
    cpu_realtime_period: int = 0
    cpu_realtime_runtime: int = 0
    device_requests: list[dict[str, Any]] | None = None


class UpdateConfig(msgspec.Struct, rename="pascal"):
    """The body of POST /containers/{id}/update (dockerd's container.UpdateConfig):
    0, "" and null leave a setting as it is."""

    cpu_shares: int = 0
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    nano_cpus: int = field(default=0, name="NanoCpus")
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    blkio_weight: int = 0
    pids_limit: int | None = None
    kernel_memory: int = 0
    restart_policy: RestartPolicy | None = None


class EndpointSettings(msgspec.Struct, rename="pascal"):
    """An entry of NetworkingConfig.EndpointsConfig, and a connect's EndpointConfig."""

    ipam_config: EndpointIPAMConfig | None = field(default=None, name="IPAMConfig")
    links: list[str] | None = None
    driver_opts: dict[str, str] | None = None
    gw_priority: int = 0
    aliases: list[str] | None = None
    network_id: str = field(default="", name="NetworkID")
    endpoint_id: str = field(default="", name="EndpointID")
    gateway: str = ""
    ip_address: str = field(default="", name="IPAddress")
    ip_prefix_len: int = field(default=0, name="IPPrefixLen")
    mac_address: str = ""


class NetworkConnectRequest(msgspec.Struct, rename="pascal"):
    """Body of POST /networks/{id}/connect."""

    container: str = ""
    endpoint_config: EndpointSettings | None = None


class NetworkDisconnectRequest(msgspec.Struct, rename="pascal"):
    """Body of POST /networks/{id}/disconnect."""

    container: str = ""
    force: bool = False


class NetworkingConfig(msgspec.Struct, rename="pascal"):
    endpoints_config: dict[str, EndpointSettings | None] | None = None


class CreateRequest(ContainerConfig, rename="pascal"):
    """Body of POST /containers/create: Config fields at the top level, plus HostConfig."""

    host_config: HostConfig | None = None
    networking_config: NetworkingConfig | None = None


class LegacyCreateRequest(msgspec.Struct, rename="pascal"):
    """Body of POST /v1.4/containers/create, as the 2013 client sent it."""

    hostname: str = ""
    user: str = ""
    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    attach_stdin: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    port_specs: list[str] | None = None
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: list[str] | None = None
    cmd: StrSlice = None
    dns: list[str] | None = None
    image: str = ""
    volumes: dict[str, dict[str, Any]] | None = None
    volumes_from: str = ""
    entrypoint: StrSlice = None
    network_disabled: bool = False
    working_dir: str = ""


class LegacyStartRequest(msgspec.Struct, rename="pascal"):
    """Body of POST /v1.4/containers/{id}/start."""

    binds: list[str] | None = None
    container_id_file: str = field(default="", name="ContainerIDFile")


class HealthLog(msgspec.Struct, rename="pascal"):
    start: str
    end: str
    exit_code: int
    output: str


class Health(msgspec.Struct, rename="pascal"):
    """`.State.Health`: the result of the container's HEALTHCHECK probes."""

    status: str = "starting"  # starting healthy unhealthy
    failing_streak: int = 0
    log: list[HealthLog] = field(default_factory=list)


class ContainerState(msgspec.Struct, rename="pascal"):
    status: str = "created"  # created running paused restarting removing exited dead
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = field(default=False, name="OOMKilled")
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"
    health: Health | None = None


class MountPoint(msgspec.Struct, rename="pascal"):
    """One mount a container gets, resolved at create (dockerd's MountPoint): a bind of a
    host path, a volume (named or anonymous) or a tmpfs. `inspect` shows these."""

    type: str  # "bind" | "volume" | "tmpfs"
    destination: str
    source: str = ""  # host path for a bind; empty for a volume (its mountpoint is looked up)
    name: str = ""  # the volume's name
    driver: str = ""
    mode: str = ""
    rw: bool = field(default=True, name="RW")
    propagation: str = ""
    anonymous: bool = False  # an anonymous volume: `rm -v` removes it with the container
    copy_data: bool = True  # fill an empty volume from the image at first mount (not nocopy)
    tmpfs_options: str = ""  # for a tmpfs: size=..,mode=..


class Volume(msgspec.Struct, rename="pascal"):
    """A volume record (the local driver): data under <data-root>/volumes/<name>/_data."""

    name: str
    mountpoint: str
    created_at: str
    driver: str = "local"
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None  # local driver: type, device, o
    anonymous: bool = False  # made for an image VOLUME or a `-v /path`


class Container(msgspec.Struct, rename="pascal"):
    """A container record: what the store keeps and `inspect` shows."""

    id: str
    name: str  # with the leading "/" as dockerd keeps it
    created: str
    path: str
    args: list[str]
    config: ContainerConfig
    host_config: HostConfig
    image: str  # image id "sha256:..."
    state: ContainerState = field(default_factory=ContainerState)
    restart_count: int = 0
    driver: str = "overlay2"
    platform: str = "linux"
    log_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    bundle: str = ""  # containers/<id>: upper/, work/, rootfs/, config.json
    monitor_pid: int = 0
    # dockerd's HasBeenManuallyStopped: a user stop/kill; no restart policy applies after it.
    manually_stopped: bool = False
    # Seconds since the epoch, kept for listing order and "Up N seconds" without reparsing.
    created_unix: float = 0.0
    mount_points: list[MountPoint] | None = None
    # While it runs: its network namespace file and its endpoints by network name.
    sandbox_key: str = ""
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[:12]


class ImageRecord(msgspec.Struct, rename="pascal"):
    """An image as the engine tracks it; the config itself lives in the blob store."""

    id: str  # "sha256:..."
    created: str
    size: int
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    parent: str = ""
    comment: str = ""
    # dockerd's Metadata.LastTagTime: when `tag` (or an import with a name) last named it.
    last_tag_time: str = ""


class ImageInfo(msgspec.Struct):
    """An image record with its config JSON, for inspect."""

    record: ImageRecord
    config: dict[str, Any]


def strslice(value: StrSlice) -> list[str] | None:
    """Normalise Docker's string-or-list Cmd/Entrypoint to a list (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


class AuthRequest(msgspec.Struct, omit_defaults=True):
    """`POST /auth` and the X-Registry-Auth header: docker's AuthConfig (lower-case keys)."""

    username: str = ""
    password: str = ""
    auth: str = ""  # base64 "user:password", as config.json stores it
    email: str = ""
    serveraddress: str = ""
    identitytoken: str = ""
    registrytoken: str = ""


class VolumeCreateRequest(msgspec.Struct, rename="pascal"):
    """Body of POST /volumes/create."""

    name: str = ""
    driver: str = ""
    driver_opts: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    cluster_volume_spec: dict[str, Any] | None = None
