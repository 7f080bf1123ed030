"""The JSON shapes of answers, per API version: the one place that knows them.

Handlers call these with engine models; `Version` says which shape. The 2013 API
(`/v1.4/`, see docker-remote-api-v1.4.md) gets the fields and spellings of then.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from dockyard.engine import health
from dockyard.engine.clock import parse_rfc3339
from dockyard.engine.models import Container, ImageInfo, ImageRecord
from dockyard.engine.mounts import inspect_shape
from dockyard.formats import human_duration
from dockyard.network.bridge import Endpoint

_to_builtins = msgspec.to_builtins


@dataclass(frozen=True)
class Version:
    major: int
    minor: int

    @property
    def legacy(self) -> bool:
        """The 2013 API family (1.0 - 1.11) answers in the shapes of docker-remote-api-v1.4."""
        return (self.major, self.minor) < (1, 12)

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def container_status(c: Container, legacy: bool = False) -> str:
    """The `Status` column: "Up 5 seconds", "Exited (0) 3 minutes ago", "Created"."""
    now = time.time()
    st = c.state
    if st.restarting:
        ago = human_duration(now - parse_rfc3339(st.finished_at))
        return f"Restarting ({st.exit_code}) {ago} ago"
    if st.running:
        up = "Up " + human_duration(now - parse_rfc3339(st.started_at))
        return up + " (Paused)" if st.paused else up + health.status_suffix(c)
    if st.status == "removing":
        return "Removal In Progress"
    if st.dead:
        return "Dead"
    if st.status == "created" or not parse_rfc3339(st.finished_at):
        return "Created"
    if legacy:
        return f"Exit {st.exit_code}"
    ago = human_duration(now - parse_rfc3339(st.finished_at))
    return f"Exited ({st.exit_code}) {ago} ago"


def _command(c: Container, legacy: bool = False) -> str:
    """The list's Command: dockerd puts an argument with a space in single quotes (`sh -c
    'echo hi'`); the 2013 daemon joined them as they were."""
    if legacy:
        return " ".join([c.path, *c.args])
    return " ".join([c.path, *(f"'{a}'" if " " in a else a for a in c.args)])


def _published(c: Container) -> dict[str, list[dict[str, str]]]:
    """Port key -> the host side of each mapping, from the running endpoints."""
    out: dict[str, list[dict[str, str]]] = {}
    for ep in c.endpoints.values():
        for m in ep.ports:
            out.setdefault(m.key, []).append({"HostIp": m.host_ip, "HostPort": str(m.host_port)})
    return out


def _ports(c: Container) -> list[dict[str, Any]]:
    """/containers/json's Ports: NetworkSettings.Ports as a list, as dockerd's view makes
    it (so nothing for a container that does not run: its release cleared them)."""
    out: list[dict[str, Any]] = []
    for key, hosts in inspect_ports(c).items():
        num, _, proto = key.partition("/")
        if not hosts:
            out.append({"PrivatePort": int(num), "Type": proto})
        for h in hosts or []:
            out.append(
                {
                    "IP": h["HostIp"],
                    "PrivatePort": int(num),
                    "PublicPort": int(h["HostPort"]),
                    "Type": proto,
                }
            )
    return out


def inspect_ports(c: Container) -> dict[str, Any]:
    """NetworkSettings.Ports: every exposed port, with its host side while it runs."""
    if not c.state.running or not c.endpoints:
        return {}
    out: dict[str, Any] = {}
    for port in c.config.exposed_ports or {}:
        num, _, proto = port.partition("/")
        out[f"{num}/{proto or 'tcp'}"] = None
    out.update(_published(c))
    return out


def container_summary(
    c: Container, image: str, v: Version, size: tuple[int, int] | None = None
) -> dict[str, Any]:
    """`image`: the name `ps` shows (ContainerService.image_name)."""
    if v.legacy:
        if ":" not in image.rsplit("/", 1)[-1]:
            image += ":latest"
        return {
            "Id": c.id,
            "Image": image,
            "Command": _command(c, legacy=True),
            "Created": int(c.created_unix),
            "Status": container_status(c, legacy=True),
            "Ports": ", ".join(
                f"{b.host_port}->{p.split('/')[0]}"
                for p, bs in (c.host_config.port_bindings or {}).items()
                for b in bs or []
            ),
            "SizeRw": size[0] if size else 0,
            "SizeRootFs": size[1] if size else 0,
        }
    out: dict[str, Any] = {
        "Id": c.id,
        "Names": [c.name],
        "Image": image,
        "ImageID": c.image,
        "Command": _command(c),
        "Created": int(c.created_unix),
        "Ports": _ports(c),
        "Labels": c.config.labels or {},
        "State": c.state.status,
        "Status": container_status(c),
        "HostConfig": {"NetworkMode": c.host_config.network_mode},
        "NetworkSettings": {"Networks": _networks(c)},
        "Mounts": _mounts(c),
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out


def _endpoint_settings(network_id: str, ep: Endpoint | None) -> dict[str, Any]:
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": None,
        "MacAddress": ep.mac if ep else "",
        "DriverOpts": None,
        "GwPriority": 0,
        "NetworkID": network_id,
        "EndpointID": ep.id if ep else "",
        "Gateway": ep.gateway if ep else "",
        "IPAddress": ep.ip if ep else "",
        "IPPrefixLen": ep.prefix_len if ep else 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def _networks(c: Container, network_ids: dict[str, str] | None = None) -> dict[str, Any]:
    """NetworkSettings.Networks: the endpoints while running; the network names
    (with empty settings) otherwise, as dockerd shows a stopped container."""
    mode = c.host_config.network_mode
    if mode.startswith("container:"):
        return {}
    ids = network_ids or {}
    if c.endpoints:
        return {name: _endpoint_settings(ep.network_id, ep) for name, ep in c.endpoints.items()}
    return {mode: _endpoint_settings(ids.get(mode, ""), None)}


def _mounts(c: Container) -> list[dict[str, Any]]:
    return [inspect_shape(mp) for mp in c.mount_points or []]


def container_inspect(
    c: Container,
    v: Version,
    lower_dirs: list[str],
    size: tuple[int, int] | None = None,
    network_ids: dict[str, str] | None = None,
) -> dict[str, Any]:
    config = _to_builtins(c.config)
    host_config = _to_builtins(c.host_config)
    state = _to_builtins(c.state)
    if state.get("Health") is None:
        state.pop("Health", None)  # dockerd shows Health only with a healthcheck
    if v.legacy:
        return {
            "Id": c.id,
            "Created": c.created,
            "Path": c.path,
            "Args": c.args,
            "Config": {
                **{k: config[k] for k in ("Hostname", "User", "AttachStdin", "AttachStdout")},
                "AttachStderr": config["AttachStderr"],
                "Memory": c.host_config.memory,
                "MemorySwap": c.host_config.memory_swap,
                "PortSpecs": None,
                "Tty": config["Tty"],
                "OpenStdin": config["OpenStdin"],
                "StdinOnce": config["StdinOnce"],
                "Env": config["Env"],
                "Cmd": config["Cmd"],
                "Dns": c.host_config.dns,
                "Image": config["Image"],
                "Volumes": config["Volumes"] or {},
                "VolumesFrom": "",
                "WorkingDir": config["WorkingDir"],
            },
            "State": {
                "Running": c.state.running,
                "Pid": c.state.pid,
                "ExitCode": c.state.exit_code,
                "StartedAt": c.state.started_at,
                "Ghost": False,
            },
            "Image": c.image.removeprefix("sha256:"),
            "NetworkSettings": {
                "IpAddress": c.endpoints["bridge"].ip if "bridge" in c.endpoints else "",
                "IpPrefixLen": c.endpoints["bridge"].prefix_len if "bridge" in c.endpoints else 0,
                "Gateway": c.endpoints["bridge"].gateway if "bridge" in c.endpoints else "",
                "Bridge": "",
                "PortMapping": None,
            },
            "SysInitPath": "",
            "ResolvConfPath": c.resolv_conf_path,
            "Volumes": {},
        }
    upper = f"{c.bundle}/upper"
    out: dict[str, Any] = {
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": state,
        "Image": c.image,
        "ResolvConfPath": c.resolv_conf_path,
        "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path,
        "LogPath": c.log_path,
        "Name": c.name,
        "RestartCount": c.restart_count,
        "Driver": c.driver,
        "Platform": c.platform,
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config,
        "GraphDriver": {
            "Name": c.driver,
            "Data": {
                "LowerDir": ":".join(lower_dirs),
                "UpperDir": upper,
                "WorkDir": f"{c.bundle}/work",
                "MergedDir": f"{c.bundle}/rootfs",
            },
        },
        "Mounts": _mounts(c),
        "Config": config,
        "NetworkSettings": _network_settings(c, network_ids),
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out


def _network_settings(c: Container, network_ids: dict[str, str] | None) -> dict[str, Any]:
    # The top-level address fields describe the default bridge's endpoint only.
    ep = c.endpoints.get("bridge")
    return {
        "Bridge": "",
        "SandboxID": hashlib.sha256(c.sandbox_key.encode()).hexdigest() if c.sandbox_key else "",
        "SandboxKey": c.sandbox_key,
        "Ports": inspect_ports(c),
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": ep.id if ep else "",
        "Gateway": ep.gateway if ep else "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": ep.ip if ep else "",
        "IPPrefixLen": ep.prefix_len if ep else 0,
        "IPv6Gateway": "",
        "MacAddress": ep.mac if ep else "",
        "Networks": _networks(c, network_ids),
    }


def _unix(created: str) -> int:
    return int(parse_rfc3339(created))


def image_summary(r: ImageRecord, labels: dict[str, str] | None, v: Version) -> Any:
    if v.legacy:
        names = r.repo_tags or ["<none>:<none>"]
        return [
            {
                "Repository": t.rsplit(":", 1)[0],
                "Tag": t.rsplit(":", 1)[1],
                "Id": r.id.removeprefix("sha256:")[:12],
                "Created": _unix(r.created),
                "Size": r.size,
                "VirtualSize": r.size,
            }
            for t in names
        ]
    out = {
        "Id": r.id,
        "ParentId": r.parent,
        "RepoTags": r.repo_tags,
        "RepoDigests": r.repo_digests,
        "Created": _unix(r.created),
        "Size": r.size,
        "SharedSize": -1,
        "Labels": labels or {},
        "Containers": -1,
    }
    if not v.at_least(1, 44):
        out["VirtualSize"] = r.size
    return [out]


def image_inspect(info: ImageInfo, layers_dirs: list[str], v: Version) -> dict[str, Any]:
    r, cfg = info.record, info.config
    config = cfg.get("config") or {}
    if v.legacy:
        return {
            "id": r.id.removeprefix("sha256:"),
            "parent": r.parent,
            "created": r.created,
            "container": cfg.get("container", ""),
            "container_config": cfg.get("container_config") or config,
            "Size": r.size,
        }
    out: dict[str, Any] = {
        "Id": r.id,
        "RepoTags": r.repo_tags,
        "RepoDigests": r.repo_digests,
        "Parent": r.parent,
        "Comment": r.comment,
        "Created": r.created,
        "DockerVersion": "",
        "Author": cfg.get("author", ""),
        "Config": {
            "Hostname": "",
            "Domainname": "",
            "User": "",
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "Tty": False,
            "OpenStdin": False,
            "StdinOnce": False,
            "Env": None,
            "Cmd": None,
            "Image": "",
            "Volumes": None,
            "WorkingDir": "",
            "Entrypoint": None,
            "OnBuild": None,
            "Labels": None,
            **config,
        },
        "Architecture": cfg.get("architecture", "amd64"),
        "Os": cfg.get("os", "linux"),
        "Size": r.size,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {"LowerDir": ":".join(layers_dirs[1:]), "UpperDir": layers_dirs[0]}
            if layers_dirs
            else {},
        },
        "RootFS": {"Type": "layers", "Layers": (cfg.get("rootfs") or {}).get("diff_ids", [])},
        "Metadata": {"LastTagTime": r.last_tag_time or "0001-01-01T00:00:00Z"},
    }
    if not v.at_least(1, 44):
        out["VirtualSize"] = r.size
    if not v.at_least(1, 45):
        # Until 1.45 (dockerd 26 dropped them there, one version after VirtualSize):
        # a committed or built image's container (or build step) it was made from.
        # docker-compose 1.29 reads ContainerConfig.Volumes to recreate a container.
        out["Container"] = cfg.get("container", "")
        made_by = cfg.get("container_config")
        out["ContainerConfig"] = {**out["Config"], **made_by} if made_by else out["Config"]
    return out
