"""The HTTP server around the API: bounds on what slow or numerous clients can hold.

aiohttp serves every connection for as long as the client keeps it, waits for a
request head or body without a deadline of its own beyond its keep-alive timer,
and lets asyncio log a traceback for every failed accept(). Here:

- A request head must arrive within HEADER_TIMEOUT of the connection going idle
  (opened, or its last answer sent): aiohttp's keep-alive timer, which data does
  not reset, so a client trickling a header byte a second (slowloris) is dropped.
- A request body must make progress: a connection whose handler waits for body
  bytes that have not come for BODY_TIMEOUT is closed.
- At most MAX_CONNECTIONS at once. A new connection beyond that closes the oldest
  idle one (no request in flight), else the one whose body has been slowest to
  come; if every one is busy with an answer, the new one is closed.
- accept() failing (EMFILE/ENFILE) is logged as one line a minute, not a
  traceback each; asyncio already pauses accepting for a second after one.
  A request aiohttp cannot parse is one debug line, not an error traceback.

None of this touches answers: hijacked attach streams, `wait`, `logs -f` and
events are requests in flight, never idle and never waiting for a body.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

from aiohttp import web, web_protocol, web_server
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("dockyard.api")

HEADER_TIMEOUT = 30.0
BODY_TIMEOUT = 30.0
MAX_CONNECTIONS = 10_000
_SWEEP_INTERVAL = 5.0
_ACCEPT_LOG_INTERVAL = 60.0


class GuardedRequestHandler(web_protocol.RequestHandler):
    """aiohttp's protocol plus the time the client last sent anything."""

    __slots__ = ("rx_at",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.rx_at = time.monotonic()
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.rx_at = time.monotonic()
        super().data_received(data)

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """A request aiohttp could not parse is the client's fault: one debug line,
        not a traceback at error level per request (a client could fill the log)."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            log.debug("malformed request from a client: %s", str(exc).replace("\n", " "))
            return
        super().log_exception(*args, **kwargs)

    def idle(self) -> bool:
        """Open and between requests: no request in flight, none queued."""
        return (
            self.transport is not None
            and not self._force_close
            and self._current_request is None
            and not self._messages
        )

    def waiting_for_body(self) -> bool:
        """Its handler waits for request body bytes the client has not sent yet."""
        request = self._current_request
        if request is None or self._payload_parser is not None:  # idle, or a hijacked stream
            return False
        body = request.content
        # Unread bytes in the buffer: our handler is the slow one, not the client.
        return not body.is_eof() and not body._size

    def starved_for_body(self, now: float) -> bool:
        return self.waiting_for_body() and now - self.rx_at > BODY_TIMEOUT


class GuardedServer(web_server.Server):
    """Makes GuardedRequestHandlers and keeps their number at max_connections."""

    max_connections = MAX_CONNECTIONS
    # After a scan found every connection busy: refuse without scanning until then
    # (a flood of connects must not cost a scan of thousands each).
    _all_busy_until = 0.0

    def __call__(self) -> web_protocol.RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(
        self, handler: web_protocol.RequestHandler, transport: asyncio.Transport
    ) -> None:
        super().connection_made(handler, transport)
        if len(self._connections) <= self.max_connections:
            return
        now = time.monotonic()
        if now >= self._all_busy_until:
            slowest: GuardedRequestHandler | None = None
            for old in self._connections:  # oldest first
                if old is handler or not isinstance(old, GuardedRequestHandler):
                    continue
                if old.idle():
                    old.force_close()
                    return
                if old.waiting_for_body() and (slowest is None or old.rx_at < slowest.rx_at):
                    slowest = old
            if slowest is not None:
                # Bodies trickled just fast enough to dodge BODY_TIMEOUT hold no
                # place that a new client needs more.
                slowest.force_close()
                return
            self._all_busy_until = now + 1.0
        _log_limited("connections", f"{self.max_connections} connections busy: refusing new ones")
        handler.force_close()

    def sweep(self) -> None:
        now = time.monotonic()
        for handler in list(self._connections):
            if isinstance(handler, GuardedRequestHandler) and handler.starved_for_body(now):
                log.debug("closing a connection: no request body for %ds", int(BODY_TIMEOUT))
                handler.force_close()


class GuardedAppRunner(web.AppRunner):
    """AppRunner whose server is a GuardedServer, swept for stalled bodies."""

    def __init__(
        self, app: web.Application, *, max_connections: int = MAX_CONNECTIONS, **kwargs: Any
    ) -> None:
        kwargs.setdefault("keepalive_timeout", HEADER_TIMEOUT)
        super().__init__(app, **kwargs)
        self._max_connections = max_connections
        self._sweeper: asyncio.Task[None] | None = None

    async def _make_server(self) -> web_server.Server:
        server = await super()._make_server()
        # aiohttp builds a plain Server from the app's private settings; giving that
        # object the subclass keeps them all (Server has no __slots__).
        server.__class__ = GuardedServer
        assert isinstance(server, GuardedServer)
        server.max_connections = self._max_connections
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(server))
        return server

    async def _sweep(self, server: web_server.Server) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL)
            assert isinstance(server, GuardedServer)
            server.sweep()

    async def cleanup(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await super().cleanup()


class TLSSite(web.TCPSite):
    """A TCP site whose TLS handshakes get HEADER_TIMEOUT, not asyncio's 60 s: a client
    that connects and never says hello holds an fd, and is not yet a connection the
    cap above can count."""

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._runner.server,  # type: ignore[arg-type]
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=HEADER_TIMEOUT,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


def connection_cap(nofile: int) -> int:
    """MAX_CONNECTIONS, or fewer when the fd limit would not leave room for the
    daemon's own files (store, logs, monitors' sockets, image unpacking)."""
    if nofile < 0:  # RLIM_INFINITY
        return MAX_CONNECTIONS
    reserve = min(1024, nofile // 4)
    return max(16, min(MAX_CONNECTIONS, nofile - reserve))


_last_logged: dict[str, float] = {}


def _log_limited(key: str, message: str) -> None:
    now = time.monotonic()
    if now - _last_logged.get(key, -_ACCEPT_LOG_INTERVAL) >= _ACCEPT_LOG_INTERVAL:
        _last_logged[key] = now
        log.warning("%s", message)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """One log line a minute for a failing accept() instead of a traceback each time."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            exc = context.get("exception")
            _log_limited("accept", f"accept() failed: {exc}; retrying in 1s")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def allow_tls_half_close() -> None:
    """Let a TLS client half-close, as Go's tls.Conn.CloseWrite does (docker's attach).

    The docker CLI and ours send TLS close_notify when stdin ends and read the
    container's output after. asyncio's SSL protocol answers close_notify by shutting
    the whole connection, whatever the protocol's eof_received() asks (it logs
    "returning true from eof_received() has no effect when using ssl"), and the
    output is lost. Here, when eof_received() asks to stay open, reading stops (so
    is_reading() tells the handler input ended) and the shutdown waits until the
    server closes its side. Python 3.11's sslproto; left alone if it looks different.
    """
    from asyncio import sslproto

    proto = sslproto.SSLProtocol
    if getattr(proto, "_dockyard_half_close", False) or not all(
        hasattr(proto, name) for name in ("_call_eof_received", "_start_shutdown")
    ):
        return
    call_eof_received = proto._call_eof_received
    start_shutdown = proto._start_shutdown

    def _call_eof_received(self: Any) -> None:
        if self._app_state != sslproto.AppProtocolState.STATE_CON_MADE:
            return call_eof_received(self)
        self._app_state = sslproto.AppProtocolState.STATE_EOF
        try:
            keep_open = self._app_protocol.eof_received()
        except Exception as exc:  # as asyncio's own: the connection fails, the loop goes on
            self._fatal_error(exc, "Error calling eof_received()")
            return None
        if keep_open and self._app_transport is not None:
            self._peer_closed_write = True
            self._app_transport.pause_reading()
        return None

    def _start_shutdown(self: Any) -> None:
        transport = self._app_transport
        if getattr(self, "_peer_closed_write", False) and transport and not transport._closed:
            return  # the peer's close_notify: our side stays open until we close it
        start_shutdown(self)

    proto._call_eof_received = _call_eof_received  # type: ignore[method-assign]
    proto._start_shutdown = _start_shutdown  # type: ignore[method-assign]
    proto._dockyard_half_close = True  # type: ignore[attr-defined]


def server_tls_context(
    cafile: str | None, certfile: str, keyfile: str, verify: bool
) -> ssl.SSLContext:
    """dockerd's TLS: the server's certificate; with `verify`, clients must present
    one signed by `cafile` (mutual TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # dockerd's floor too
    ctx.load_cert_chain(certfile, keyfile)
    if verify:
        ctx.load_verify_locations(cafile=cafile)
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif cafile:
        # --tls with a CA: a client certificate is checked when one is offered.
        ctx.load_verify_locations(cafile=cafile)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
