"""Reading query parameters and JSON bodies the way dockerd does."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from dockyard.api.context import API_VERSION
from dockyard.api.shapes import Version
from dockyard.errors import InvalidParameter

T = TypeVar("T")


def version(request: web.Request) -> Version:
    return request[API_VERSION]


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    """dockerd's BoolValue: "", "0", "no", "false", "none" are false; anything else true."""
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.strip().lower() not in ("", "0", "no", "false", "none")


def qint(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f'invalid value for "{name}": {raw!r} is not an integer') from None


def qfloat_time(request: web.Request, name: str) -> float:
    """since/until: unix seconds with optional fraction ("1700000000.5")."""
    raw = request.query.get(name, "")
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise InvalidParameter(f'invalid value for "{name}": {raw!r}') from None


def qfilters(request: web.Request) -> Any:
    raw = request.query.get("filters", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidParameter(f"invalid filter: {e}") from None


async def body(request: web.Request, model: type[T], *, optional: bool = False) -> T | None:
    raw = await request.read()
    if not raw.strip():
        if optional:
            return None
        raise InvalidParameter("invalid JSON: empty request body")
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    except msgspec.DecodeError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(data) + b"\n", status=status, content_type="application/json"
    )


def legacy_json_response(data: Any, status: int = 200) -> web.Response:
    """As the 2013 daemon wrote it: no trailing newline, text/plain; charset=utf-8."""
    return web.Response(
        body=msgspec.json.encode(data), status=status, content_type="text/plain", charset="utf-8"
    )
