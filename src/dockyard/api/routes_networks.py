"""/networks/...: parse, call one service method, shape the answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from dockyard.api import network_shapes
from dockyard.api.context import services
from dockyard.api.params import body, json_response, qfilters, version
from dockyard.engine.filters import normalize
from dockyard.engine.models import NetworkConnectRequest, NetworkDisconnectRequest
from dockyard.engine.network_models import Network, NetworkCreateRequest
from dockyard.engine.services import Services
from dockyard.errors import NotFound

if TYPE_CHECKING:
    from dockyard.api.app import Router


def _containers(svc: Services, n: Network) -> dict[str, dict[str, Any]]:
    out = {}
    for cid, name, e in svc.network_members(n):
        out[cid] = network_shapes.network_container(name, e)
    return out


async def list_networks(request: web.Request) -> web.Response:
    svc = services(request)
    filters = normalize(qfilters(request))
    with_containers = not version(request).at_least(1, 28)
    out = [
        network_shapes.network(
            svc.network_view(n),
            _containers(svc, n) if with_containers else None,
            svc.network_options(n),
        )
        for n in svc.networks.list(filters)
    ]
    return json_response(out)


async def inspect(request: web.Request) -> web.Response:
    svc = services(request)
    ref = request.match_info["id"]
    scope = request.query.get("scope", "")
    n = svc.networks.get(ref)
    if scope and scope != n.scope:
        raise NotFound(f"network {ref} not found")
    # verbose adds swarm service details in dockerd; local networks have none.
    return json_response(
        network_shapes.network(svc.network_view(n), _containers(svc, n), svc.network_options(n))
    )


async def create(request: web.Request) -> web.Response:
    req = await body(request, NetworkCreateRequest)
    assert req is not None  # body() raises on an empty one
    n = await services(request).networks.create(req)
    return json_response({"Id": n.id, "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.Response:
    await services(request).networks.remove(request.match_info["id"])
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    req = await body(request, NetworkConnectRequest)
    assert req is not None
    await services(request).networks.connect(
        request.match_info["id"], req.container, req.endpoint_config
    )
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    req = await body(request, NetworkDisconnectRequest)
    assert req is not None
    await services(request).networks.disconnect(request.match_info["id"], req.container, req.force)
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    filters = normalize(qfilters(request))
    deleted = await services(request).networks.prune(filters)
    return json_response({"NetworksDeleted": deleted})


def register(router: Router) -> None:
    router.add("GET", "/networks", list_networks)
    router.add("GET", "/networks/", list_networks)
    router.add("POST", "/networks/create", create)
    router.add("POST", "/networks/prune", prune)
    router.add("GET", "/networks/{id}", inspect)
    router.add("DELETE", "/networks/{id}", remove)
    router.add("POST", "/networks/{id}/connect", connect)
    router.add("POST", "/networks/{id}/disconnect", disconnect)
