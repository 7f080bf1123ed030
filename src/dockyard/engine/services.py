"""The engine's services, wired together for one daemon."""

from __future__ import annotations

import os
import platform
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import dockyard
from dockyard.engine.containers import ContainerService
from dockyard.engine.events import EventBus
from dockyard.engine.exec import ExecService
from dockyard.engine.health import HealthService
from dockyard.engine.images import ImageService
from dockyard.engine.stats import StatsService
from dockyard.engine.volumes import VolumeService


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

    def __post_init__(self) -> None:
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
        }
