"""The dashboard's HTTP listener: the page, its files, and the Engine API under /api.

`/api/...` is one more instance of api.app on the daemon's services, mounted as a
sub-application: the page gets exactly what a client on the unix socket gets,
through the same handlers and validation. What this adds in front of it is
access.py's checks; the Origin header, once checked here, is not passed on (the
API refuses every request that has one, being no web server of its own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from multidict import CIMultiDict

from dockyard.api.streams import RawStreamResponse
from dockyard.dashboard import terminal
from dockyard.dashboard.access import TOKEN_PARAM, AccessPolicy
from dockyard.engine.services import Services
from dockyard.errors import DockyardError

log = logging.getLogger("dockyard.dashboard")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

STATIC = Path(__file__).parent / "static"

# The page runs only its own scripts; xterm.js sets styles from script, hence
# 'unsafe-inline' for styles alone. No framing (clickjacking the stop buttons).
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; font-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The first URL carries the token: never send it on as a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Never forwarded to the API: the browser's credentials and its Origin.
_DROPPED = {"cookie", "origin"}


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


_REFUSAL_LOG_INTERVAL = 60.0
_last_refusal_logged = [-_REFUSAL_LOG_INTERVAL]


def _log_refusal(request: web.Request, why: str) -> None:
    """A warning a minute at most: a page hammering the port must not fill the log."""
    now = time.monotonic()
    if now - _last_refusal_logged[0] >= _REFUSAL_LOG_INTERVAL:
        _last_refusal_logged[0] = now
        log.warning("dashboard: refused %s %s: %s", request.method, request.path, why)
    else:
        log.debug("dashboard: refused %s %s: %s", request.method, request.path, why)


def make_guard(policy: AccessPolicy) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        why = policy.check_host(request.headers.get("Host"))
        if why is None:
            why = policy.check_origin(request.headers.get("Origin"))
        if why is not None:
            _log_refusal(request, why)
            return _refuse(403, why)
        given = request.query.get(TOKEN_PARAM)
        if given is not None:
            if not policy.token_matches(given):
                return _refuse(401, "wrong dashboard token")
            if request.method == "GET" and not request.path.startswith("/api/"):
                # The logged URL: the cookie from now on, and the token out of the
                # address bar (and of the history).
                raise web.HTTPSeeOther(
                    location=request.path, headers={"Set-Cookie": policy.set_cookie_header()}
                )
        elif not policy.token_matches(policy.cookie_token(request.headers.get("Cookie"))):
            return _refuse(
                401,
                "this dashboard needs its token: open the URL the daemon logged "
                f"(http://{sorted(policy.hosts)[0]}/?{TOKEN_PARAM}=...)",
            )
        if request.path.startswith("/api/"):
            headers = CIMultiDict(
                (k, v) for k, v in request.headers.items() if k.lower() not in _DROPPED
            )
            request = request.clone(headers=headers)
        return await handler(request)

    return guard


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if isinstance(response, RawStreamResponse):
        return  # a hijacked stream: its head is exactly dockerd's
    for key, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


def make_dashboard_app(services: Services, policy: AccessPolicy) -> web.Application:
    from dockyard.api.app import make_app

    app = web.Application(middlewares=[make_guard(policy)], client_max_size=0)
    app[terminal.POLICY] = policy
    app[terminal.CONNECT] = terminal.InProcessConnector()
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.router.add_get("/terminal/exec/{id}", terminal.terminal)
    app.add_subapp("/api/", make_app(services))
    return app


@dataclass
class DashboardListener:
    runner: web.AppRunner
    policy: AccessPolicy

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(
    services: Services, address: str, port: int, token: str, max_connections: int = 256
) -> DashboardListener:
    from dockyard.api.server import GuardedAppRunner

    policy = AccessPolicy(address, port, token)
    app = make_dashboard_app(services, policy)
    runner = GuardedAppRunner(
        app,
        max_connections=max_connections,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=1.0,
    )
    await runner.setup()
    app[terminal.CONNECT].server = runner.server
    site = web.TCPSite(runner, address, port, reuse_address=True)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise DockyardError(
            f"cannot serve the dashboard on {address}:{port}: {e.strerror}"
        ) from None
    log.info("Dashboard listening on %s:%d: open %s", address, port, policy.url)
    return DashboardListener(runner, policy)
