"""The aiohttp application: version prefixes, error mapping, common headers, routes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

import dockyard
from dockyard.api import (
    routes_archive,
    routes_build,
    routes_containers,
    routes_events,
    routes_exec,
    routes_images,
    routes_networks,
    routes_system,
    routes_volumes,
    routes_watch,
    routes_ws,
)
from dockyard.api.context import API_VERSION, SERVICES
from dockyard.api.shapes import Version
from dockyard.api.streams import RawStreamResponse, keep_half_closed_connections_open
from dockyard.engine.services import Services
from dockyard.errors import (
    Conflict,
    DockyardError,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotModified,
    PayloadTooLarge,
    RuntimeFailure,
    Unauthorized,
    Unavailable,
    storage_full,
)

log = logging.getLogger("dockyard.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The one place errors become HTTP statuses.
_STATUS: list[tuple[type[DockyardError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (InvalidParameter, 400),
    (Forbidden, 403),
    (Unauthorized, 401),
    (NotModified, 304),
    (Unavailable, 503),
    (RuntimeFailure, 400),
]

CURRENT = Version(*map(int, dockyard.API_VERSION.split(".")))
MINIMUM = Version(*map(int, dockyard.MIN_API_VERSION.split(".")))


def status_of(error: DockyardError) -> int:
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


def _error(message: str, status: int) -> web.Response:
    import msgspec

    return web.Response(
        body=msgspec.json.encode({"message": message}) + b"\n",
        status=status,
        content_type="application/json",
    )


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin is not None:
        # Only browsers send Origin (on every cross-origin or state-changing request).
        # The API answers no CORS headers, and it serves no web page: refusing here
        # also covers body-less POSTs (kill, stop...) and DNS-rebinding pages.
        return _error(f"requests from web pages are not accepted (Origin: {origin})", 403)
    raw = request.match_info.get("version")
    if raw is None:
        request[API_VERSION] = CURRENT
    else:
        major, minor = (int(x) for x in raw.split("."))
        v = Version(major, minor)
        if (major, minor) > (CURRENT.major, CURRENT.minor):
            return _error(
                f"client version {v} is too new. Maximum supported API version is {CURRENT}", 400
            )
        if not v.legacy and (major, minor) < (MINIMUM.major, MINIMUM.minor):
            return _error(
                f"client version {v} is too old. Minimum supported API version is {MINIMUM}, "
                "please upgrade your client to a newer version",
                400,
            )
        request[API_VERSION] = v
    try:
        return await handler(request)
    except NotModified:
        return web.Response(status=304)
    except DockyardError as e:
        status = status_of(e)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, e.message)
        return _error(e.message, status)
    except web.HTTPException as e:
        if e.status == 404:
            return _error("page not found", 404)
        if e.status == 405:
            return _error(f"{request.method} is not allowed on {request.path}", 405)
        raise
    except (ConnectionResetError, BrokenPipeError):
        raise
    except Exception as e:
        full = storage_full(e)
        if full is not None:
            # An expected condition of a full data root: one line, no traceback.
            log.error("%s %s: %s", request.method, request.path, full.message)
            return _error(full.message, 500)
        log.exception("%s %s failed", request.method, request.path)
        return _error(f"internal error: {type(e).__name__}: {e}", 500)


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    if isinstance(response, RawStreamResponse):
        return
    v: Version | None = request.get(API_VERSION)
    if v is not None and v.legacy:
        # The 2013 daemon sent no Server header; keep the seed's answers as they were.
        response.headers.popall("Server", None)
        return
    response.headers["Api-Version"] = dockyard.API_VERSION
    response.headers["Docker-Experimental"] = "false"
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = f"Dockyard/{dockyard.__version__} (linux)"


class Router:
    """Registers each route at `/path` and at `/v{version}/path`."""

    def __init__(self, app: web.Application) -> None:
        self._router = app.router

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._router.add_route(method, path, handler)
        self._router.add_route(method, r"/v{version:\d+\.\d+}" + path, handler)


def make_app(services: Services) -> web.Application:
    keep_half_closed_connections_open()
    app = web.Application(middlewares=[api_middleware], client_max_size=0)
    app[SERVICES] = services
    app.on_response_prepare.append(_common_headers)
    router = Router(app)
    routes_system.register(router)
    routes_containers.register(router)
    routes_images.register(router)
    routes_exec.register(router)
    routes_events.register(router)
    routes_watch.register(router)
    routes_volumes.register(router)
    routes_archive.register(router)
    routes_networks.register(router)
    routes_build.register(router)
    routes_ws.register(router)
    return app
