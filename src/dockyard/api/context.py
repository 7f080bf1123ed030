"""Where handlers find the engine's services."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.shapes import Version
from dockyard.engine.services import Services

SERVICES = web.AppKey("services", Services)
API_VERSION = web.RequestKey("api_version", Version)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
