"""/volumes: create, list, inspect, remove, prune (Engine API v1.50 shapes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from dockyard.api.context import services
from dockyard.api.params import body, json_response, qbool, qfilters, version
from dockyard.engine.filters import normalize
from dockyard.engine.models import Volume, VolumeCreateRequest
from dockyard.errors import InvalidParameter

if TYPE_CHECKING:
    from dockyard.api.app import Router


def volume_shape(v: Volume) -> dict[str, Any]:
    return {
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
    }


async def create(request: web.Request) -> web.Response:
    req = await body(request, VolumeCreateRequest)
    assert req is not None
    if req.cluster_volume_spec:
        raise InvalidParameter(
            "cluster volumes are not available: this node is not a swarm manager"
        )
    v = services(request).volumes.create(req.name, req.driver, req.labels, req.driver_opts)
    return json_response(volume_shape(v), status=201)


async def list_volumes(request: web.Request) -> web.Response:
    vols = services(request).volumes.list(normalize(qfilters(request)))
    return json_response({"Volumes": [volume_shape(v) for v in vols], "Warnings": []})


async def inspect(request: web.Request) -> web.Response:
    return json_response(volume_shape(services(request).volumes.get(request.match_info["name"])))


async def remove(request: web.Request) -> web.Response:
    services(request).volumes.remove(request.match_info["name"], force=qbool(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    filters = normalize(qfilters(request))
    if not version(request).at_least(1, 42):
        # Before 1.42 a prune took named volumes too: dockerd adds all=true for old clients.
        filters["all"] = ["true"]
    deleted, reclaimed = services(request).volumes.prune(filters)
    return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})


def register(router: Router) -> None:
    router.add("POST", "/volumes/create", create)
    router.add("GET", "/volumes", list_volumes)
    router.add("POST", "/volumes/prune", prune)
    router.add("GET", "/volumes/{name}", inspect)
    router.add("DELETE", "/volumes/{name}", remove)
