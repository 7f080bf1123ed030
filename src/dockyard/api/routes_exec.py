"""/containers/{id}/exec and /exec/...: docker exec over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from dockyard.api.context import services
from dockyard.api.params import body, json_response, qint, version
from dockyard.api.streams import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    RawStreamResponse,
    frame,
    pump_stdin,
    take_over_input,
)
from dockyard.engine.exec import ExecConfig, ExecStartConfig
from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.api.app import Router

log = logging.getLogger("dockyard.api")


async def create(request: web.Request) -> web.Response:
    config = await body(request, ExecConfig)
    assert config is not None
    exec_id = services(request).execs.create(request.match_info["id"], config)
    return json_response({"Id": exec_id}, status=201)


async def start(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    exec_id = request.match_info["id"]
    # dockerd reads an absent body as {} (Detach false, Tty false).
    start_cfg = await body(request, ExecStartConfig, optional=True) or ExecStartConfig()
    if start_cfg.detach:
        await svc.execs.start(exec_id, start_cfg)
        return web.Response(status=200)
    # Checked before the head goes out, so 404/409 reach the client as errors; the
    # process starts after it, as with dockerd: a client that reads the head through a
    # buffered reader (the Docker SDK) would otherwise swallow the first output.
    ex = svc.execs.check_startable(exec_id)
    tty = ex.config.tty or start_cfg.tty
    content_type = (
        MULTIPLEXED_STREAM if not tty and version(request).at_least(1, 42) else RAW_STREAM
    )
    if request.headers.get("Upgrade", "").lower() == "tcp":
        head = {"Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"}
        resp = RawStreamResponse(101, "UPGRADED", head)
    else:
        resp = RawStreamResponse(200, "OK", {"Content-Type": content_type})
    reader = take_over_input(request)
    await resp.prepare(request)
    try:
        streams = await svc.execs.start(exec_id, start_cfg)
    except DockyardError as e:  # the container stopped meanwhile: dockerd writes it out
        with contextlib.suppress(Exception):
            await resp.write(_out(tty, (e.message + "\r\n").encode()))
            await resp.write_eof()
        return resp
    if streams.error:
        # As dockerd: the stream says why. A client reading the head through a buffered
        # reader (the SDK's http.client) loses bytes that arrive with it: let it go first.
        await asyncio.sleep(0.05)
        with contextlib.suppress(Exception):
            await resp.write(_out(tty, (streams.error + "\r\n").encode()))
            await resp.write_eof()
        return resp
    stdin_task = None
    if reader is not None and streams.stdin is not None:
        stdin_task = asyncio.create_task(pump_stdin(reader.queue, streams))
    try:
        async for kind, data in streams.frames:
            await resp.write(data if tty else frame(kind, data))
    except (ConnectionResetError, RuntimeError):
        log.debug("exec client of %s went away", exec_id[:12])
    finally:
        if stdin_task is not None:
            stdin_task.cancel()
        with contextlib.suppress(Exception):
            await streams.frames.aclose()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        await resp.write_eof()
    return resp


def _out(tty: bool, data: bytes) -> bytes:
    return data if tty else frame(1, data)


async def inspect(request: web.Request) -> web.Response:
    return json_response(services(request).execs.inspect(request.match_info["id"]))


async def resize(request: web.Request) -> web.Response:
    await services(request).execs.resize(
        request.match_info["id"], qint(request, "h", 0) or 0, qint(request, "w", 0) or 0
    )
    return web.Response(status=200)


def register(router: Router) -> None:
    router.add("POST", "/containers/{id}/exec", create)
    router.add("POST", "/exec/{id}/start", start)
    router.add("POST", "/exec/{id}/resize", resize)
    router.add("GET", "/exec/{id}/json", inspect)
