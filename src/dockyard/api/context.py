"""Where handlers find the engine's services."""

from __future__ import annotations

from aiohttp import web

from dockyard.engine.services import Services

SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
