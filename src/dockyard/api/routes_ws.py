"""GET /containers/{id}/attach/ws: attach over a websocket, as dockerd has it.

As dockerd's wsContainersAttach: the container's output goes out as websocket
messages, raw (no multiplexing header, TTY or not), in binary frames from API 1.28
(text frames before); what the client sends is the container's stdin, and closing
the socket detaches (stdin is closed only for a StdinOnce container). Query as the
hijacked attach: stdin, stdout, stderr, logs, stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from dockyard.api.context import services
from dockyard.api.params import qbool, version
from dockyard.api.streams import pump_stdin
from dockyard.errors import InvalidParameter

if TYPE_CHECKING:
    from dockyard.api.app import Router

log = logging.getLogger("dockyard.api")

_MAX_MESSAGE = 1 << 20


async def attach_ws(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    ref = request.match_info["id"]
    c = svc.containers.get(ref)
    ws = web.WebSocketResponse(max_msg_size=_MAX_MESSAGE)
    if not ws.can_prepare(request).ok:
        raise InvalidParameter("attach/ws needs a websocket upgrade (GET with Upgrade: websocket)")
    # As the hijacked attach: errors (no such container, stopped) before the upgrade.
    streams = await svc.containers.attach(
        ref,
        stdin=qbool(request, "stdin"),
        stdout=qbool(request, "stdout"),
        stderr=qbool(request, "stderr"),
        logs=qbool(request, "logs"),
        stream=qbool(request, "stream"),
        wait_for_start=True,
    )
    binary = version(request).at_least(1, 28)
    await ws.prepare(request)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    stdin_task = None
    if streams.stdin is not None:
        stdin_task = asyncio.create_task(pump_stdin(queue, streams))

    async def output() -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            async for _kind, data in streams.frames:
                if binary:
                    await ws.send_bytes(data)
                else:
                    await ws.send_str(data.decode(errors="replace"))
        await ws.close()  # the container's output ended: so does the socket

    out = asyncio.create_task(output())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                queue.put_nowait(msg.data)
            elif msg.type == WSMsgType.TEXT:
                queue.put_nowait(msg.data.encode())
    except (ConnectionError, RuntimeError):
        log.debug("websocket attach client of %s went away", c.short_id)
    finally:
        queue.put_nowait(None)
        if not out.done():
            out.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await out
        if stdin_task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stdin_task, 5)
        with contextlib.suppress(Exception):
            await streams.frames.aclose()  # type: ignore[attr-defined]
    return ws


def register(router: Router) -> None:
    router.add("GET", "/containers/{id}/attach/ws", attach_ws)
