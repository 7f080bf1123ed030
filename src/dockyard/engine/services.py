"""The engine's services, wired together for one daemon."""

from __future__ import annotations

import os
import platform
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

import dockyard
from dockyard.engine.containers import ContainerService
from dockyard.engine.events import EventBus
from dockyard.engine.exec import ExecService
from dockyard.engine.health import HealthService
from dockyard.engine.images import ImageService
from dockyard.engine.models import Container
from dockyard.engine.network_models import IPAM, Endpoint, IPAMPool, Network
from dockyard.engine.networks import NetworkService
from dockyard.engine.stats import StatsService
from dockyard.engine.volumes import VolumeService
from dockyard.runtime.cgroups_v2 import host_cgroup_version


@dataclass
class Services:
    containers: ContainerService
    images: ImageService
    data_root: str
    live_restore: bool = False
    daemon_id: str = ""
    labels: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    execs: ExecService = field(init=False)
    stats: StatsService = field(init=False)
    health: HealthService = field(init=False)
    networks: NetworkService = field(init=False)

    def __post_init__(self) -> None:
        self.networks = self.containers.networks
        c = self.containers
        self.images.events = c.events
        self.execs = ExecService(c, self.images, c.launcher, c.events)
        c.removal_hooks.append(self.execs.forget_container)
        self.stats = StatsService(c)
        self.health = HealthService(c, self.execs)

    @property
    def events(self) -> EventBus:
        return self.containers.events

    @property
    def volumes(self) -> VolumeService:
        return self.containers.volumes

    def network_members(self, n: Network) -> list[tuple[str, str, Endpoint]]:
        """(container id, name, endpoint) of the containers on a network."""
        out = []
        if n.predefined and n.name == "bridge":
            # The default bridge's endpoints live in the container records.
            for c in self.containers.list(all_=True):
                ep = c.endpoints.get("bridge")
                if ep is not None:
                    e = Endpoint(
                        network_id=n.id,
                        container_id=c.id,
                        endpoint_id=ep.id,
                        ip_address=ep.ip,
                        ip_prefix_len=ep.prefix_len,
                        gateway=ep.gateway,
                        mac_address=ep.mac,
                    )
                    out.append((c.id, c.name.lstrip("/"), e))
            return out
        for e in self.networks.endpoints_on(n.id):
            facts = self.networks.container(e.container_id)
            # As dockerd: only the endpoints of running containers (stopped ones hold none).
            if facts is not None and e.endpoint_id:
                out.append((e.container_id, facts.name, e))
        return out

    def network_view(self, n: Network) -> Network:
        """A network as inspect shows it: the default bridge with its driver's subnet."""
        default = self.containers.networking.default
        if not (n.predefined and n.name == "bridge") or default is None:
            return n
        pool = IPAMPool(subnet=default.subnet, gateway=default.gateway)
        return msgspec.structs.replace(n, ipam=IPAM(driver="default", options=None, config=[pool]))

    def network_options(self, n: Network) -> dict[str, str]:
        default = self.containers.networking.default
        if not (n.predefined and n.name == "bridge") or default is None:
            return n.options
        return {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": default.bridge,
            "com.docker.network.driver.mtu": str(default.mtu),
        }

    def container_networks(self, c: Container) -> list[tuple[Network, Endpoint, list[str]]]:
        """The user-defined networks of a container with its endpoint and DNS names."""
        name = c.name.lstrip("/")
        return [
            (n, e, self.networks.dns_names(e, name)) for n, e in self.networks.endpoints_of(c.id)
        ]

    def info(self) -> dict[str, Any]:
        """The facts `GET /info` reports (counts, host, storage)."""
        all_ = self.containers.list(all_=True)
        running = sum(1 for c in all_ if c.state.running)
        paused = sum(1 for c in all_ if c.state.paused)
        try:
            with open("/proc/meminfo") as f:
                mem_kb = int(f.readline().split()[1])
        except (OSError, ValueError, IndexError):
            mem_kb = 0
        os_name = "Linux"
        try:
            with open("/etc/os-release") as f:
                for line in f:
                    if line.startswith("PRETTY_NAME="):
                        os_name = line.split("=", 1)[1].strip().strip('"')
        except OSError:
            pass
        return {
            "containers": len(all_),
            "running": running,
            "paused": paused,
            "stopped": len(all_) - running - paused,
            "images": len(self.images.list()),
            "ncpu": os.cpu_count() or 1,
            "mem_total": mem_kb * 1024,
            "kernel": platform.release(),
            "os": os_name,
            "arch": platform.machine(),
            "name": socket.gethostname(),
            "version": dockyard.__version__,
            "cgroup_version": host_cgroup_version(),
            "runtimes": self.containers.runtimes.info(),
        }
