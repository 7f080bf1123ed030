"""GET /events: the engine's event stream, one JSON object per line."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from dockyard.api.context import services
from dockyard.api.params import qfilters
from dockyard.engine.clock import parse_rfc3339
from dockyard.engine.filters import normalize
from dockyard.errors import InvalidParameter

if TYPE_CHECKING:
    from dockyard.api.app import Router


def _qtime(request: web.Request, name: str) -> float:
    """Unix seconds ("1700000000", "1700000000.5") or RFC 3339, as dockerd's timetypes."""
    raw = request.query.get(name, "")
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        value = parse_rfc3339(raw)
        if not value:
            raise InvalidParameter(f'invalid value for "{name}": {raw!r}') from None
        return value


async def events(request: web.Request) -> web.StreamResponse:
    bus = services(request).events
    stream = bus.stream(
        since=_qtime(request, "since"),
        until=_qtime(request, "until"),
        filters=normalize(qfilters(request)),
    )
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        async for ev in stream:
            await resp.write(msgspec.json.encode(ev.message()) + b"\n")
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        await resp.write_eof()
    return resp


def register(router: Router) -> None:
    router.add("GET", "/events", events)
