"""/_ping, /version, /info."""

from __future__ import annotations

import platform
import sys
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

import dockyard
from dockyard.api import shapes
from dockyard.api.context import services
from dockyard.api.params import json_response
from dockyard.api.params import version as api_version
from dockyard.api.routes_volumes import volume_shape
from dockyard.engine.disk_usage import disk_usage as engine_disk_usage

if TYPE_CHECKING:
    from dockyard.api.app import Router


def _ping_headers() -> dict[str, str]:
    return {
        "Api-Version": dockyard.API_VERSION,
        "Ostype": "linux",
        "Docker-Experimental": "false",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }


async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK", content_type="text/plain", headers=_ping_headers())


def _go_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


async def version(request: web.Request) -> web.Response:
    details = {
        "ApiVersion": dockyard.API_VERSION,
        "MinAPIVersion": dockyard.MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{sys.version.split()[0]}",
        "Os": "linux",
        "Arch": _go_arch(),
        "KernelVersion": platform.release(),
        "BuildTime": "",
        "Experimental": "false",
    }
    return json_response(
        {
            "Platform": {"Name": "Dockyard"},
            "Components": [{"Name": "Engine", "Version": dockyard.__version__, "Details": details}],
            "Version": dockyard.__version__,
            "ApiVersion": dockyard.API_VERSION,
            "MinAPIVersion": dockyard.MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": details["GoVersion"],
            "Os": "linux",
            "Arch": details["Arch"],
            "KernelVersion": details["KernelVersion"],
            "BuildTime": "",
        }
    )


async def info(request: web.Request) -> web.Response:
    svc = services(request)
    facts = svc.info()
    return json_response(
        {
            "ID": svc.daemon_id,
            "Containers": facts["containers"],
            "ContainersRunning": facts["running"],
            "ContainersPaused": facts["paused"],
            "ContainersStopped": facts["stopped"],
            "Images": facts["images"],
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["host", "null"],
                "Authorization": None,
                "Log": ["json-file"],
            },
            "MemoryLimit": True,
            "SwapLimit": True,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "OomKillDisable": False,  # --oom-kill-disable is refused
            "IPv4Forwarding": True,
            "Debug": False,
            "NFd": 0,
            "NGoroutines": 0,
            "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": facts.get("cgroup_version", "1"),
            "NEventsListener": 0,
            "KernelVersion": facts["kernel"],
            "OperatingSystem": facts["os"],
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": facts["arch"],
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": svc.images.insecure.registry_config(),
            "NCPU": facts["ncpu"],
            "MemTotal": facts["mem_total"],
            "GenericResources": None,
            "DockerRootDir": svc.data_root,
            "HttpProxy": "",
            "HttpsProxy": "",
            "NoProxy": "",
            "Name": facts["name"],
            "Labels": svc.labels,
            "ExperimentalBuild": False,
            "ServerVersion": facts["version"],
            **facts["runtimes"],
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "LiveRestoreEnabled": svc.live_restore,
            "Isolation": "",
            "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": ""},
            "RuncCommit": {"ID": ""},
            "InitCommit": {"ID": ""},
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Warnings": None,
        }
    )


async def disk_usage(request: web.Request) -> web.Response:
    """GET /system/df (type= since API 1.42: only those kinds are measured)."""
    svc = services(request)
    v = api_version(request)
    kinds = request.query.getall("type", []) if v.at_least(1, 42) else []
    usage = await engine_disk_usage(svc, kinds)
    out: dict[str, Any] = {
        "LayersSize": usage.layers_size,
        "Images": None,
        "Containers": None,
        "Volumes": None,
        "BuildCache": usage.build_cache,
    }
    if usage.images is not None:
        out["Images"] = []
        for im in usage.images:
            summary = shapes.image_summary(im.record, svc.images.labels(im.record.id), v)[0]
            summary["SharedSize"] = im.shared_size
            summary["Containers"] = im.containers
            out["Images"].append(summary)
    if usage.containers is not None:
        out["Containers"] = [
            shapes.container_summary(
                cu.container,
                svc.containers.image_name(cu.container),
                v,
                (cu.size_rw, cu.size_root_fs),
            )
            for cu in usage.containers
        ]
    if usage.volumes is not None:
        out["Volumes"] = [
            {**volume_shape(vu.volume), "UsageData": {"Size": vu.size, "RefCount": vu.ref_count}}
            for vu in usage.volumes
        ]
    return json_response(out)


def register(router: Router) -> None:
    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
    router.add("GET", "/system/df", disk_usage)
