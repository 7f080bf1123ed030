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
from dockyard.engine.images import ImageService
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
