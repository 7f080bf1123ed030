"""POST /commit (a container's changes as an image) and POST /build (the classic builder)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from dockyard.api.context import services
from dockyard.api.params import (
    check_json_content_type,
    decode_json,
    json_response,
    qbool,
    qfilters,
    qint,
    read_bounded,
)
from dockyard.engine import image_commit
from dockyard.engine.build import prune as build_prune_mod
from dockyard.engine.build import service as build_service
from dockyard.engine.build.options import BuildOptions
from dockyard.engine.build.run_step import StepFailed
from dockyard.engine.filters import normalize
from dockyard.engine.models import ContainerConfig
from dockyard.errors import DockyardError, InvalidParameter

log = logging.getLogger("dockyard.api")

if TYPE_CHECKING:
    from dockyard.api.app import Router


async def commit(request: web.Request) -> web.Response:
    svc = services(request)
    q = request.query
    config = None
    if request.body_exists:
        check_json_content_type(request)
        raw = await read_bounded(request)
        if raw.strip() not in (b"", b"null", b"{}"):
            config = decode_json(raw, ContainerConfig)
    opts = image_commit.CommitOptions(
        container=q.get("container", ""),
        repo=q.get("repo", ""),
        tag=q.get("tag", ""),
        comment=q.get("comment", ""),
        author=q.get("author", ""),
        pause=qbool(request, "pause", default=True),
        changes=q.getall("changes", []),
        config=config,
    )
    image_id = await image_commit.commit(svc.containers, svc.images, opts)
    return json_response({"Id": image_id}, status=201)


def _json_query(request: web.Request, name: str) -> dict[str, Any]:
    raw = request.query.get(name, "")
    if not raw:
        return {}
    value = decode_json(raw.encode("utf-8", "surrogatepass"), Any)
    if not isinstance(value, dict):
        raise InvalidParameter(f"{name} must be a JSON object")
    return value


def _json_list(request: web.Request, name: str) -> list[str]:
    raw = request.query.get(name, "")
    if not raw:
        return []
    value = decode_json(raw.encode("utf-8", "surrogatepass"), Any)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"{name} must be a JSON array of strings")
    return value


def build_options(request: web.Request) -> BuildOptions:
    q = request.query
    if q.get("version") not in (None, "", "1"):
        raise InvalidParameter(f"builder version {q.get('version')} (BuildKit) is not supported")
    if q.get("outputs"):
        raise InvalidParameter("outputs (BuildKit exporters) are not supported")
    if q.get("squash") and qbool(request, "squash"):
        raise InvalidParameter("squash is only supported with experimental mode")
    for name in ("isolation",):
        if q.get(name) not in (None, "", "default"):
            raise InvalidParameter(f"{name}={q.get(name)} is not supported")
    args = _json_query(request, "buildargs")
    labels = _json_query(request, "labels")
    ulimits_raw = q.get("ulimits", "")
    ulimits = (
        decode_json(ulimits_raw.encode(), Any) if ulimits_raw not in ("", "null", "[]") else []
    )
    return BuildOptions(
        tags=q.getall("t", []),
        dockerfile=q.get("dockerfile", ""),
        build_args={str(k): (None if v is None else str(v)) for k, v in args.items()},
        target=q.get("target", ""),
        no_cache=qbool(request, "nocache"),
        remove=qbool(request, "rm", default=True),
        force_remove=qbool(request, "forcerm"),
        labels={str(k): str(v) for k, v in labels.items()},
        quiet=qbool(request, "q"),
        network_mode=q.get("networkmode", ""),
        # One parameter, comma-separated (the docker CLI), or one per host.
        extra_hosts=[h for v in q.getall("extrahosts", []) for h in v.split(",") if h],
        cache_from=_json_list(request, "cachefrom"),
        pull=qbool(request, "pull"),
        shm_size=qint(request, "shmsize", 0) or 0,
        memory=qint(request, "memory", 0) or 0,
        memory_swap=qint(request, "memswap", 0) or 0,
        cpu_shares=qint(request, "cpushares", 0) or 0,
        cpu_period=qint(request, "cpuperiod", 0) or 0,
        cpu_quota=qint(request, "cpuquota", 0) or 0,
        cpuset_cpus=q.get("cpusetcpus", ""),
        cpuset_mems=q.get("cpusetmems", ""),
        cgroup_parent=q.get("cgroupparent", ""),
        ulimits=list(ulimits or []),
        platform=q.get("platform", ""),
        remote=q.get("remote", ""),
    )


async def build(request: web.Request) -> web.StreamResponse:
    """dockerd's build stream: {"stream": ...} lines, {"aux": {"ID": ...}}, and an
    error as {"errorDetail": ..., "error": ...}; the answer starts once the
    options are checked. A client that goes away cancels the build."""
    svc = services(request)
    opts = build_options(request)
    build_service.check_options(opts, svc.images)
    ctype = request.headers.get("Content-Type", "application/x-tar")
    if ctype.split(";")[0].strip() not in _CONTEXT_TYPES:
        raise InvalidParameter(f"unsupported context Content-Type: {ctype}")
    auths = build_service.registry_auths(request.headers.get("X-Registry-Config"))
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    job = asyncio.ensure_future(
        build_service.build(
            svc.containers,
            svc.images,
            request.content.iter_chunked(1 << 20),
            opts,
            queue.put_nowait,
            auths,
        )
    )
    job.add_done_callback(lambda _f: queue.put_nowait(None))
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    watcher = asyncio.ensure_future(_watch_client(request, job))
    try:
        message = await queue.get()
        if message is None and not job.cancelled() and job.exception() is not None:
            # As dockerd: an error before the first line of output (a Dockerfile that does
            # not parse, a context without it) is the answer's status, not a 200 stream.
            raise job.exception()  # type: ignore[misc]
        await resp.prepare(request)
        while message is not None:
            await resp.write(msgspec.json.encode(message) + b"\r\n")
            message = await queue.get()
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if isinstance(e, DockyardError):
                message_text = e.message
            else:
                log.exception("build failed")
                message_text = f"internal error: {type(e).__name__}: {e}"
            detail: dict[str, Any] = {"message": message_text}
            if isinstance(e, StepFailed):
                detail["code"] = e.code
            await resp.write(
                msgspec.json.encode({"errorDetail": detail, "error": message_text}) + b"\r\n"
            )
        await resp.write_eof()
    except (ConnectionResetError, BrokenPipeError):
        pass  # the watcher cancels the build
    finally:
        if not job.done():
            job.cancel()
            with contextlib.suppress(BaseException):
                await job
        watcher.cancel()
    return resp


_CONTEXT_TYPES = ("application/x-tar", "application/tar", "application/octet-stream", "")


async def _watch_client(request: web.Request, job: asyncio.Future[Any]) -> None:
    """Cancel the build once the client's connection is gone (Ctrl-C), even while
    a step prints nothing."""
    while not job.done():
        transport = request.transport
        if transport is None or transport.is_closing() or _peer_gone(transport):
            job.cancel()
            return
        await asyncio.sleep(0.2)


_GONE = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0x2000)


def _peer_gone(transport: asyncio.BaseTransport) -> bool:
    """The client closed its end (the daemon keeps half-closed connections open for
    attach, so aiohttp does not see it): a build's client never half-closes."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), _GONE)
    return bool(poller.poll(0))


async def build_prune(request: web.Request) -> web.Response:
    svc = services(request)
    if request.query.get("keep-storage") not in (None, "", "0"):
        raise InvalidParameter("keep-storage is not supported by the classic builder's cache")
    filters = normalize(qfilters(request))
    removed, reclaimed = build_prune_mod.prune(svc.images, filters, qbool(request, "all"))
    return json_response({"CachesDeleted": removed or None, "SpaceReclaimed": reclaimed})


def register(router: Router) -> None:
    router.add("POST", "/commit", commit)
    router.add("POST", "/build", build)
    router.add("POST", "/build/prune", build_prune)
