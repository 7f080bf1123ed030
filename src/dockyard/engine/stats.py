"""docker stats: the runtime's cgroup counters and the container's network, shaped as
dockerd's StatsResponse (the CLI computes the percentages from it)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

from dockyard.engine.clock import ZERO_TIME, rfc3339
from dockyard.engine.containers import ContainerService
from dockyard.engine.models import Container
from dockyard.errors import Conflict, RuntimeFailure

INTERVAL = 1.0  # dockerd's collector samples every second
_TICKS = os.sysconf("SC_CLK_TCK")
_NS_PER_TICK = 1_000_000_000 // _TICKS


def _system_cpu_ns() -> int:
    """The host's total CPU time (the `cpu` line of /proc/stat), as dockerd's."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                return sum(int(v) for v in line.split()[1:8]) * _NS_PER_TICK
    return 0


def _host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _networks(pid: int) -> dict:
    """Per-interface counters of the container's network namespace (lo left out)."""
    out: dict = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        v = [int(x) for x in rest.split()]
        if name == "lo" or len(v) < 16:
            continue
        out[name] = {
            "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
            "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11],
        }  # fmt: skip
    return out


def _empty_cpu() -> dict:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def empty_stats(c: Container) -> dict:
    """What dockerd answers for a container that is not running."""
    return {
        "name": c.name,
        "id": c.id,
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": {"io_service_bytes_recursive": None},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _empty_cpu(),
        "precpu_stats": _empty_cpu(),
        "memory_stats": {},
    }


class StatsService:
    def __init__(self, containers: ContainerService) -> None:
        self._containers = containers

    async def _sample(self, c: Container) -> dict:
        link = self._containers.link_of(c)
        if link is None:
            raise Conflict(f"Container {c.id} is not running")
        try:
            raw = await link.stats()
        except RuntimeFailure as e:
            raise Conflict(e.message) from None
        cpu, mem, pids = raw.get("cpu", {}), raw.get("memory", {}), raw.get("pids", {})
        percpu = cpu.get("percpu_usage_ns") or []
        cpu_stats = {
            "cpu_usage": {
                "total_usage": cpu.get("total_usage_ns") or 0,
                "percpu_usage": percpu,
                "usage_in_kernelmode": cpu.get("system_ticks", 0) * _NS_PER_TICK,
                "usage_in_usermode": cpu.get("user_ticks", 0) * _NS_PER_TICK,
            },
            "system_cpu_usage": _system_cpu_ns(),
            "online_cpus": len([v for v in percpu if v]) or os.cpu_count() or 1,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }
        memory: dict = {}
        if mem:
            limit = mem.get("limit") or 0
            host = _host_memory()
            if limit <= 0 or (host and limit > host):
                limit = host  # unlimited: dockerd reports the host's memory
            memory = {
                "usage": mem.get("usage") or 0,
                "max_usage": mem.get("max_usage") or 0,
                "failcnt": mem.get("failcnt") or 0,
                "stats": mem.get("stats") or {},
                "limit": limit,
            }
        pids_stats = {}
        if pids:
            pids_stats = {"current": pids.get("current") or 0}
            if pids.get("limit", -1) and pids.get("limit", -1) > 0:
                pids_stats["limit"] = pids["limit"]
        out = {
            "name": c.name,
            "id": c.id,
            "read": rfc3339(),
            "pids_stats": pids_stats,
            "blkio_stats": {
                "io_service_bytes_recursive": raw.get("blkio"),
                "io_serviced_recursive": None,
                "io_queue_recursive": None,
                "io_service_time_recursive": None,
                "io_wait_time_recursive": None,
                "io_merged_recursive": None,
                "io_time_recursive": None,
                "sectors_recursive": None,
            },
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": cpu_stats,
            "memory_stats": memory,
        }
        nets = _networks(c.state.pid)
        if nets:
            out["networks"] = nets
        return out

    async def stream(
        self, ref: str, *, stream: bool = True, one_shot: bool = False
    ) -> AsyncIterator[dict]:
        """Samples every INTERVAL; each carries the one before as precpu_stats.

        stream=false answers one sample whose precpu is INTERVAL older (as dockerd,
        so that CPU % means something), or with one_shot=true at once, without it."""
        c = self._containers.get(ref)
        if not c.state.running:
            yield empty_stats(c)
            return
        prev: dict | None = None
        if not stream and not one_shot:
            prev = await self._sample(c)
            await asyncio.sleep(INTERVAL)
        while True:
            t0 = time.monotonic()
            c = self._containers.get(ref)
            if not c.state.running:
                return
            try:
                cur = await self._sample(c)
            except Conflict:
                return  # it stopped between two samples
            cur["preread"] = prev["read"] if prev else ZERO_TIME
            cur["precpu_stats"] = prev["cpu_stats"] if prev else _empty_cpu()
            yield cur
            if not stream:
                return
            prev = cur
            await asyncio.sleep(max(0.0, INTERVAL - (time.monotonic() - t0)))
