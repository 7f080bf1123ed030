"""/containers/...: parse, call one service method, shape the answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from dockyard.api import network_shapes, shapes
from dockyard.api.context import services
from dockyard.api.params import (
    body,
    json_response,
    legacy_json_response,
    qbool,
    qfilters,
    qfloat_time,
    qint,
    version,
)
from dockyard.api.streams import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    RawStreamResponse,
    frame,
    frames,
    pump_stdin,
    take_over_input,
)
from dockyard.engine.clock import fixed_nanos
from dockyard.engine.explain import explain_container
from dockyard.engine.filters import normalize
from dockyard.engine.models import (
    Container,
    ContainerConfig,
    CreateRequest,
    HostConfig,
    LegacyCreateRequest,
    LegacyStartRequest,
    PortBinding,
    UpdateConfig,
)
from dockyard.engine.services import Services
from dockyard.engine.start_trace import CLIENT_TIMING_HEADER
from dockyard.errors import InvalidParameter

if TYPE_CHECKING:
    from dockyard.api.app import Router

log = logging.getLogger("dockyard.api")


def _split_create(req: CreateRequest) -> tuple[ContainerConfig, HostConfig]:
    fields = {f: getattr(req, f) for f in ContainerConfig.__struct_fields__}
    return ContainerConfig(**fields), req.host_config or HostConfig()


def _from_legacy(req: LegacyCreateRequest) -> tuple[ContainerConfig, HostConfig]:
    """The 2013 create body: resources and DNS lived in Config then."""
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[PortBinding] | None] = {}
    for spec in req.port_specs or []:
        # "8000", "80:8000" (public:private) as the 0.5 client sent them
        public, _, private = spec.rpartition(":")
        key = f"{private}/tcp" if "/" not in private else private
        exposed[key] = {}
        if public:
            bindings[key] = [PortBinding(host_port=public)]
    config = ContainerConfig(
        hostname=req.hostname,
        user=req.user,
        attach_stdin=req.attach_stdin,
        attach_stdout=req.attach_stdout,
        attach_stderr=req.attach_stderr,
        exposed_ports=exposed or None,
        tty=req.tty,
        open_stdin=req.open_stdin,
        stdin_once=req.stdin_once,
        env=req.env,
        cmd=req.cmd,
        image=req.image,
        volumes=req.volumes or None,
        working_dir=req.working_dir,
        # [] in 2013 meant "none given": the image's entrypoint applies.
        entrypoint=req.entrypoint or None,
        network_disabled=req.network_disabled,
    )
    host = HostConfig(
        memory=req.memory,
        memory_swap=req.memory_swap,
        cpu_shares=req.cpu_shares,
        dns=req.dns,
        volumes_from=[req.volumes_from] if req.volumes_from else None,
        port_bindings=bindings or None,
        network_mode="none" if req.network_disabled else "",
    )
    return config, host


async def create(request: web.Request) -> web.Response:
    svc = services(request)
    v = version(request)
    name = request.query.get("name", "")
    if v.legacy:
        legacy = await body(request, LegacyCreateRequest)
        config, host = _from_legacy(legacy)  # type: ignore[arg-type]
        c = await svc.containers.create(config, host, name)
        # As the seed shows: the short id, text/plain, 21 bytes.
        return legacy_json_response({"Id": c.short_id}, status=201)
    req = await body(request, CreateRequest)
    config, host = _split_create(req)  # type: ignore[arg-type]
    c = await svc.containers.create(config, host, name, req.networking_config)  # type: ignore[union-attr]
    warnings = svc.containers.networking.warnings(c.host_config)
    return json_response({"Id": c.id, "Warnings": warnings}, status=201)


async def start(request: web.Request) -> web.Response:
    svc = services(request)
    ref = request.match_info["id"]
    if version(request).legacy:
        legacy = await body(request, LegacyStartRequest, optional=True)
        if legacy is not None and legacy.binds:
            svc.containers.set_start_binds(ref, legacy.binds)
    received = time.perf_counter_ns()
    await svc.containers.start(ref)
    svc.containers.note_start_request(ref, received, request.headers.get(CLIENT_TIMING_HEADER))
    return web.Response(status=204)


async def stop(request: web.Request) -> web.Response:
    await services(request).containers.stop(
        request.match_info["id"], qint(request, "t"), request.query.get("signal") or None
    )
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    await services(request).containers.restart(
        request.match_info["id"], qint(request, "t"), request.query.get("signal") or None
    )
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    await services(request).containers.kill(
        request.match_info["id"], request.query.get("signal") or None
    )
    return web.Response(status=204)


async def update(request: web.Request) -> web.Response:
    upd = await body(request, UpdateConfig)
    warnings = services(request).containers.update(request.match_info["id"], upd)
    return json_response({"Warnings": warnings})


async def wait(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    ref = request.match_info["id"]
    # Registered (and validated: 404, 400) before the headers go out.
    waiting = svc.containers.waiter(ref, request.query.get("condition", "not-running"))
    # Headers go out at once, as dockerd does, so a client knows the wait is set up
    # (the docker CLI waits for them before it starts the container).
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        state = await asyncio.shield(waiting)
    finally:
        waiting.cancel()  # the client went away: forget its waiter
    if version(request).legacy:
        payload: dict = {"StatusCode": state.exit_code}
    else:
        payload = {"StatusCode": state.exit_code, "Error": None}
        if state.error:
            payload["Error"] = {"Message": state.error}
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await resp.write(msgspec.json.encode(payload) + b"\n")
        await resp.write_eof()
    return resp


async def attach(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    v = version(request)
    ref = request.match_info["id"]
    c = svc.containers.get(ref)
    streams = await svc.containers.attach(
        ref,
        stdin=qbool(request, "stdin"),
        stdout=qbool(request, "stdout"),
        stderr=qbool(request, "stderr"),
        logs=qbool(request, "logs"),
        stream=qbool(request, "stream"),
        wait_for_start=not v.legacy,
    )
    # 2013: raw output, no frames. Later: frames unless the container has a TTY.
    multiplexed = not v.legacy and not streams.tty
    content_type = MULTIPLEXED_STREAM if multiplexed and v.at_least(1, 42) else RAW_STREAM
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    if upgrade:
        resp = RawStreamResponse(
            101,
            "UPGRADED",
            {"Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"},
        )
    else:
        resp = RawStreamResponse(200, "OK", {"Content-Type": content_type})
    stdin_task = None
    reader = take_over_input(request)
    if reader is not None and streams.stdin is not None:
        stdin_task = asyncio.create_task(pump_stdin(reader.queue, streams))
    await resp.prepare(request)
    try:
        async for kind, data in streams.frames:
            await resp.write(frame(kind, data) if multiplexed else data)
    except (ConnectionResetError, RuntimeError):
        log.debug("attach client of %s went away", c.short_id)
    finally:
        if stdin_task is not None:
            stdin_task.cancel()
        with contextlib.suppress(Exception):
            await streams.frames.aclose()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        await resp.write_eof()
    return resp


async def logs(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    stdout, stderr = qbool(request, "stdout"), qbool(request, "stderr")
    if not (stdout or stderr):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    tail_raw = request.query.get("tail", "all")
    tail = None if tail_raw in ("all", "") else qint(request, "tail")
    if tail is not None and tail < 0:
        tail = None
    c, entries = svc.containers.logs(
        request.match_info["id"],
        stdout=stdout,
        stderr=stderr,
        tail=tail,
        since=qfloat_time(request, "since"),
        until=qfloat_time(request, "until"),
        follow=qbool(request, "follow"),
    )
    v = version(request)
    multiplexed = not c.config.tty
    content_type = MULTIPLEXED_STREAM if multiplexed and v.at_least(1, 42) else RAW_STREAM
    timestamps = qbool(request, "timestamps")
    details = qbool(request, "details")
    resp = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        async for batch in entries:
            data = batch.with_details() if details else batch.data
            if timestamps:  # "<time> <line>", joined in C
                stamps = map(str.encode, map(fixed_nanos, batch.times))
                data = list(map(b" ".join, zip(stamps, data, strict=True)))
            await resp.write(frames(batch.streams, data) if multiplexed else b"".join(data))
    except (ConnectionResetError, RuntimeError):
        pass
    with contextlib.suppress(Exception):
        await resp.write_eof()
    return resp


async def list_containers(request: web.Request) -> web.Response:
    svc = services(request)
    v = version(request)
    filters = normalize(qfilters(request))
    for key in ("before", "since"):
        if request.query.get(key):
            filters.setdefault(key, []).append(request.query[key])
    items = svc.containers.list(
        all_=qbool(request, "all"), limit=qint(request, "limit", -1) or -1, filters=filters
    )
    want_size = qbool(request, "size")
    out = []
    for c in items:
        size = await svc.containers.size(c) if want_size else None
        summary = shapes.container_summary(c, svc.containers.image_name(c), v, size)
        if not v.legacy:
            _add_networks(svc, c, summary, v)
        out.append(summary)
    return json_response(out)


async def inspect(request: web.Request) -> web.Response:
    svc = services(request)
    c = svc.containers.get(request.match_info["id"])
    size = await svc.containers.size(c) if qbool(request, "size") else None
    lower = svc.images.blobs.lower_dirs(c.image)
    ids = svc.containers.networking.network_ids()
    out = shapes.container_inspect(c, version(request), lower, size, ids)
    if "ExecIDs" in out:
        out["ExecIDs"] = svc.execs.exec_ids(c.id) or None
    if not version(request).legacy:
        _add_networks(svc, c, out, version(request))
    return json_response(out)


def _add_networks(svc: Services, c: Container, out: dict, v: shapes.Version) -> None:
    """The container's user-defined networks in NetworkSettings.Networks."""
    networks = out["NetworkSettings"]["Networks"]
    mode = c.host_config.network_mode
    if mode not in ("bridge", "host", "none", "default"):
        networks.pop(mode, None)  # a user-defined one: listed below if still joined
    for n, e, names in svc.container_networks(c):
        networks[n.name] = network_shapes.endpoint_settings(
            n, e, names, legacy_aliases=not v.at_least(1, 44)
        )


async def trace(request: web.Request) -> web.Response:
    """Dockyard's own: the start trace of a container (not in Docker's API);
    ?format=perfetto: in the Chrome/Perfetto trace-event format."""
    fmt = request.query.get("format") or "dockyard"
    containers = services(request).containers
    if fmt == "perfetto":
        return json_response(containers.perfetto_trace(request.match_info["id"]))
    if fmt != "dockyard":
        raise InvalidParameter(f'unknown trace format "{fmt}": "dockyard" or "perfetto"')
    return json_response(containers.start_trace(request.match_info["id"]))


async def explain(request: web.Request) -> web.Response:
    """Dockyard's own: the container built by hand, as a shell script (dockyard explain).
    ?own_bundle=1: a script that does not need the container's bundle (explain run)."""
    own = qbool(request, "own_bundle")
    containers = services(request).containers
    return json_response(explain_container(containers, request.match_info["id"], own))


async def remove(request: web.Request) -> web.Response:
    await services(request).containers.remove(
        request.match_info["id"], force=qbool(request, "force"), volumes=qbool(request, "v")
    )
    return web.Response(status=204)


async def resize(request: web.Request) -> web.Response:
    await services(request).containers.resize(
        request.match_info["id"], qint(request, "h", 0) or 0, qint(request, "w", 0) or 0
    )
    return web.Response(status=200)


def register(router: Router) -> None:
    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/json", list_containers)
    router.add("GET", "/containers/{id}/json", inspect)
    router.add("POST", "/containers/{id}/start", start)
    router.add("POST", "/containers/{id}/stop", stop)
    router.add("POST", "/containers/{id}/restart", restart)
    router.add("POST", "/containers/{id}/kill", kill)
    router.add("POST", "/containers/{id}/wait", wait)
    router.add("POST", "/containers/{id}/update", update)
    router.add("POST", "/containers/{id}/attach", attach)
    router.add("POST", "/containers/{id}/resize", resize)
    router.add("GET", "/containers/{id}/logs", logs)
    router.add("GET", "/containers/{id}/trace", trace)
    router.add("GET", "/containers/{id}/explain", explain)
    router.add("DELETE", "/containers/{id}", remove)
