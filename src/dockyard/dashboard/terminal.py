"""The dashboard's terminal: a browser websocket relayed to `POST /exec/{id}/start`.

Browsers cannot hijack an HTTP connection as the docker CLI does, so the page opens
a websocket here and this relays its bytes both ways over an exec start sent to the
dashboard's own `/api/...` (the Engine API, through the same token and Host checks)
on an in-process socket pair: the terminal is a client of the API like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
from collections.abc import Callable

from aiohttp import WSMsgType, web

from dockyard.dashboard.access import AccessPolicy

log = logging.getLogger("dockyard.dashboard")

_EXEC_ID = re.compile(r"[0-9a-f]{64}")
_MAX_HEAD = 64 * 1024
_READ_CHUNK = 64 * 1024


class InProcessConnector:
    """Hands one end of a socket pair to the dashboard's own HTTP server (set once
    the runner has made it), as if a client had connected."""

    server: Callable[[], asyncio.Protocol] | None = None

    async def connect(self, sock: socket.socket) -> None:
        assert self.server is not None
        await asyncio.get_running_loop().connect_accepted_socket(self.server, sock)


async def _open_exec_stream(
    connector: InProcessConnector, policy: AccessPolicy, exec_id: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, bytes]:
    """Sends the hijacking exec start; returns the stream, the status and what came
    after the head (or the error body, for a status that is not 101/200)."""
    ours, theirs = socket.socketpair()
    await connector.connect(theirs)
    reader, writer = await asyncio.open_connection(sock=ours)
    body = json.dumps({"Detach": False, "Tty": True}).encode()
    host = sorted(policy.hosts)[0]
    writer.write(
        f"POST /api/exec/{exec_id}/start HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Cookie: {policy.cookie_name}={policy.token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > _MAX_HEAD:
        raise ConnectionError("answer head too long")
    status = int(head.split(b" ", 2)[1])
    if status in (101, 200):
        return reader, writer, status, b""
    rest = await asyncio.wait_for(reader.read(_MAX_HEAD), 5)
    writer.close()
    return reader, writer, status, rest


async def terminal(request: web.Request) -> web.StreamResponse:
    exec_id = request.match_info["id"]
    if not _EXEC_ID.fullmatch(exec_id):
        raise web.HTTPBadRequest(text="not an exec id\n")
    policy: AccessPolicy = request.app[POLICY]
    connect = request.app[CONNECT]
    ws = web.WebSocketResponse(max_msg_size=1 << 20, heartbeat=30.0)
    await ws.prepare(request)
    try:
        reader, writer, status, error = await _open_exec_stream(connect, policy, exec_id)
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        await ws.close(code=1011, message=f"exec start failed: {e}".encode()[:120])
        return ws
    if status not in (101, 200):
        message = error.split(b"\r\n\r\n", 1)[-1]
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(message)["message"].encode()
        await ws.send_str(f"\r\n[exec start: {status}: {message.decode(errors='replace')}]\r\n")
        await ws.close(code=1011)
        return ws

    async def output() -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while data := await reader.read(_READ_CHUNK):
                await ws.send_bytes(data)
        await ws.close()  # the shell ended: so does the page's socket

    pump = asyncio.create_task(output())
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                writer.write(data)
                await writer.drain()
    except (ConnectionError, RuntimeError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(pump), 1.0)
        pump.cancel()
        writer.close()
        await ws.close()
    return ws


POLICY = web.AppKey("dashboard_policy", AccessPolicy)
CONNECT = web.AppKey("dashboard_connect", InProcessConnector)
