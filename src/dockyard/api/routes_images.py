"""/images/...: list, inspect, import and pull (create), push, tag, delete, save (get), load; /auth."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import IO, TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from dockyard.api import shapes
from dockyard.api.context import services
from dockyard.api.params import body, json_response, qbool, qfilters, version
from dockyard.api.socket_body import SocketBody
from dockyard.engine.filters import normalize
from dockyard.engine.models import AuthRequest
from dockyard.engine.progress import ProgressStream
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.image.registry_auth import AuthConfig, decode_auth_header

if TYPE_CHECKING:
    from dockyard.api.app import Router

log = logging.getLogger("dockyard.api")


async def list_images(request: web.Request) -> web.Response:
    svc = services(request)
    v = version(request)
    filters = normalize(qfilters(request))
    if request.query.get("filter"):  # the pre-1.25 spelling of reference=
        filters.setdefault("reference", []).append(request.query["filter"])
    out = []
    for record in svc.images.list(filters, all_=qbool(request, "all")):
        out.extend(shapes.image_summary(record, svc.images.labels(record.id), v))
    return json_response(out)


async def inspect(request: web.Request) -> web.Response:
    svc = services(request)
    info = svc.images.inspect(request.match_info["name"])
    dirs = svc.images.blobs.lower_dirs(info.record.id)
    return json_response(shapes.image_inspect(info, dirs, version(request)))


async def create(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    src = request.query.get("fromSrc")
    if src is None:
        return await _pull(request)
    if src != "-":
        raise InvalidParameter("only fromSrc=- (the request body) is supported for import")
    changes = request.query.getall("changes", [])

    async def copy_body(f: IO[bytes]) -> None:
        async for chunk in request.content.iter_chunked(1 << 20):
            f.write(chunk)

    # dockerd answers import with a JSON progress stream; the image id is its last line.
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    image_id = await svc.images.import_rootfs(
        copy_body,
        repo=request.query.get("repo", ""),
        tag=request.query.get("tag", ""),
        changes=changes,
        message=request.query.get("message", ""),
    )
    await resp.prepare(request)
    await resp.write(msgspec.json.encode({"status": image_id}) + b"\r\n")
    await resp.write_eof()
    return resp


async def tag(request: web.Request) -> web.Response:
    svc = services(request)
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidParameter("repository name must have at least one component")
    svc.images.tag(request.match_info["name"], repo, request.query.get("tag", ""))
    return web.Response(status=201)


async def delete(request: web.Request) -> web.Response:
    svc = services(request)
    result = svc.images.delete(
        request.match_info["name"],
        force=qbool(request, "force"),
        prune=not qbool(request, "noprune"),
    )
    return json_response(result)


async def save(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    name = request.match_info.get("name")
    names = [name] if name is not None else request.query.getall("names", [])
    # Unknown names answer 404 before any byte.
    plan = svc.images.save_plan(names, _json_platform(request))
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await svc.images.save(plan, resp.write)
    await resp.write_eof()
    return resp


async def load(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    # dockerd's default: quiet unless asked (the docker CLI always says which).
    quiet = qbool(request, "quiet", default=True)
    progress = ProgressStream()

    async def run() -> None:
        platform = _json_platform(request)
        # Read on the unpacking thread straight from the socket where it can be.
        body = SocketBody.take(request)
        try:
            lines = await svc.images.load(
                body or request.content.iter_chunked(1 << 20),
                None if quiet else progress,
                platform,
            )
        finally:
            if body is not None:
                body.end()
        for line in lines:
            progress.emit({"stream": line + "\n"})

    return await _stream_progress(request, asyncio.ensure_future(run()), progress)


async def _stream_progress(
    request: web.Request, job: asyncio.Future[Any], progress: ProgressStream
) -> web.StreamResponse:
    """dockerd's progress stream: an error before the first message is an HTTP
    error; after it, an error message in the stream."""
    resp: web.StreamResponse | None = None
    async for message in progress.messages(job):
        if resp is None:
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
        await resp.write(msgspec.json.encode(message) + b"\r\n")
    try:
        await job
    except Exception as e:
        if resp is None:
            raise
        if isinstance(e, DockyardError):
            message = e.message
        else:
            log.exception("%s %s failed", request.method, request.path)
            message = f"internal error: {e}"
        await resp.write(
            msgspec.json.encode({"errorDetail": {"message": message}, "error": message}) + b"\r\n"
        )
    if resp is None:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
    await resp.write_eof()
    return resp


def _json_platform(request: web.Request) -> str | None:
    """save/load/push take a JSON-encoded OCI platform: {"os": ..., "architecture": ...}."""
    raw = request.query.get("platform")
    if not raw:
        return None
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise InvalidParameter(f"invalid platform: {raw}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("architecture", ""), str):
        raise InvalidParameter(f"invalid platform: {raw}")
    parts = [
        str(doc.get("os") or "linux"),
        str(doc.get("architecture") or ""),
        str(doc.get("variant") or ""),
    ]
    return "/".join(p for p in parts if p)


def _registry_auth(request: web.Request) -> AuthConfig:
    return decode_auth_header(request.headers.get("X-Registry-Auth"))


async def _pull(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    image = request.query.get("fromImage", "")
    if not image:
        raise InvalidParameter("either fromSrc or fromImage must be given")
    progress = ProgressStream()
    job = asyncio.ensure_future(
        svc.images.pull(
            image,
            request.query.get("tag", ""),
            _registry_auth(request),
            progress,
            platform=request.query.get("platform") or None,
        )
    )
    return await _stream_progress(request, job, progress)


async def push(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    refs = svc.images.push_refs(
        request.match_info["name"],
        request.query.get("tag", ""),
        _json_platform(request),
    )
    progress = ProgressStream()
    job = asyncio.ensure_future(svc.images.push(refs, _registry_auth(request), progress))
    return await _stream_progress(request, job, progress)


async def auth(request: web.Request) -> web.Response:
    svc = services(request)
    creds = await body(request, AuthRequest)
    assert creds is not None
    username, password = creds.username, creds.password
    if not username and creds.auth:
        try:
            username, _, password = base64.b64decode(creds.auth).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise InvalidParameter("invalid auth: not base64 user:password") from None
    await svc.images.login(
        creds.serveraddress,
        AuthConfig(username, password, creds.identitytoken, creds.registrytoken),
    )
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


async def history(request: web.Request) -> web.Response:
    svc = services(request)
    return json_response(svc.images.history(request.match_info["name"], _json_platform(request)))


async def prune(request: web.Request) -> web.Response:
    svc = services(request)
    filters = normalize(qfilters(request))
    # On the loop, as DELETE /images: the image service's state and events are the loop's.
    deleted, reclaimed = svc.images.prune(filters)
    return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def register(router: Router) -> None:
    router.add("GET", "/images/json", list_images)
    router.add("POST", "/images/create", create)
    router.add("GET", "/images/get", save)
    router.add("POST", "/images/load", load)
    router.add("POST", "/images/prune", prune)
    router.add("GET", "/images/{name:.+}/history", history)
    router.add("GET", "/images/{name:.+}/json", inspect)
    router.add("GET", "/images/{name:.+}/get", save)
    router.add("POST", "/images/{name:.+}/push", push)
    router.add("POST", "/auth", auth)
    router.add("POST", "/images/{name:.+}/tag", tag)
    router.add("DELETE", "/images/{name:.+}", delete)
