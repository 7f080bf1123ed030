"""/containers/{id}/pause|unpause|rename|top|stats: watching and nudging running containers."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from dockyard.api.context import services
from dockyard.api.params import json_response, qbool, qfilters
from dockyard.engine import container_ops
from dockyard.engine.filters import normalize
from dockyard.errors import InvalidParameter

if TYPE_CHECKING:
    from dockyard.api.app import Router


async def pause(request: web.Request) -> web.Response:
    await container_ops.pause(services(request).containers, request.match_info["id"])
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    await container_ops.unpause(services(request).containers, request.match_info["id"])
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    name = request.query.get("name", "")
    if not name:
        raise InvalidParameter("Neither old nor new names may be empty")
    container_ops.rename(services(request).containers, request.match_info["id"], name)
    return web.Response(status=204)


async def top(request: web.Request) -> web.Response:
    result = await container_ops.top(
        services(request).containers, request.match_info["id"], request.query.get("ps_args", "")
    )
    return json_response(result)


async def stats(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    stream = qbool(request, "stream") if "stream" in request.query else True
    one_shot = qbool(request, "one-shot")
    if one_shot and stream:
        raise InvalidParameter("cannot have stream=true and one-shot=true")
    svc.containers.get(request.match_info["id"])  # 404 before the head goes out
    samples = svc.stats.stream(request.match_info["id"], stream=stream, one_shot=one_shot)
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        async for sample in samples:
            await resp.write(msgspec.json.encode(sample) + b"\n")
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        await samples.aclose()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        await resp.write_eof()
    return resp


async def changes(request: web.Request) -> web.Response:
    svc = services(request)
    return json_response(
        await container_ops.diff(svc.containers, svc.images, request.match_info["id"])
    )


async def prune(request: web.Request) -> web.Response:
    filters = normalize(qfilters(request))
    deleted, reclaimed = await container_ops.prune(services(request).containers, filters)
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def register(router: Router) -> None:
    router.add("GET", "/containers/{id}/changes", changes)
    router.add("POST", "/containers/prune", prune)
    router.add("POST", "/containers/{id}/pause", pause)
    router.add("POST", "/containers/{id}/unpause", unpause)
    router.add("POST", "/containers/{id}/rename", rename)
    router.add("GET", "/containers/{id}/top", top)
    router.add("GET", "/containers/{id}/stats", stats)
