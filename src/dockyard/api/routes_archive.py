"""/containers/{id}/archive: HEAD (stat), GET (tar of a path), PUT (extract a tar)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import TYPE_CHECKING

from aiohttp import web

from dockyard.api.context import services
from dockyard.api.params import qbool
from dockyard.engine import container_export
from dockyard.errors import InvalidParameter

if TYPE_CHECKING:
    from dockyard.api.app import Router

STAT_HEADER = "X-Docker-Container-Path-Stat"
_CHUNK = 1 << 20


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("Could not find the file  in container: path is required")
    return path


def _tmpdir(request: web.Request) -> str:
    d = os.path.join(services(request).data_root, "tmp")
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


async def head(request: web.Request) -> web.Response:
    path = _path(request)
    with services(request).containers.files(request.match_info["id"]) as files:
        st = await asyncio.to_thread(files.stat, path)
    return web.Response(status=200, headers={STAT_HEADER: st.header()})


async def get(request: web.Request) -> web.StreamResponse:
    path = _path(request)
    with tempfile.TemporaryFile(dir=_tmpdir(request)) as spool:
        with services(request).containers.files(request.match_info["id"], "archive-path") as files:
            st = await asyncio.to_thread(files.stat, path)
            await asyncio.to_thread(files.write_tar, path, spool)
        spool.seek(0)
        resp = web.StreamResponse(
            status=200, headers={STAT_HEADER: st.header(), "Content-Type": "application/x-tar"}
        )
        await resp.prepare(request)
        while chunk := await asyncio.to_thread(spool.read, _CHUNK):
            await resp.write(chunk)
        await resp.write_eof()
        return resp


async def put(request: web.Request) -> web.Response:
    path = _path(request)
    svc = services(request)
    files = svc.containers.files(request.match_info["id"], "extract-to-dir")
    with files, tempfile.TemporaryFile(dir=_tmpdir(request)) as spool:
        async for chunk in request.content.iter_chunked(_CHUNK):
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)
        await asyncio.to_thread(files.extract, path, spool, qbool(request, "copyUIDGID"))
    return web.Response(status=200)


async def export(request: web.Request) -> web.StreamResponse:
    """GET /containers/{id}/export: the container's file tree as a tar."""
    svc = services(request)
    svc.containers.get(request.match_info["id"])  # 404 before any byte
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await container_export.export(svc.containers, svc.images, request.match_info["id"], resp.write)
    await resp.write_eof()
    return resp


def register(router: Router) -> None:
    router.add("HEAD", "/containers/{id}/archive", head)
    router.add("GET", "/containers/{id}/archive", get)
    router.add("PUT", "/containers/{id}/archive", put)
    router.add("GET", "/containers/{id}/export", export)
