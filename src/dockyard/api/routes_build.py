"""POST /commit (a container's changes as an image) and POST /build (the classic builder)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from dockyard.api.context import services
from dockyard.api.params import (
    check_json_content_type,
    decode_json,
    json_response,
    qbool,
    read_bounded,
)
from dockyard.engine import image_commit
from dockyard.engine.models import ContainerConfig

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


def register(router: Router) -> None:
    router.add("POST", "/commit", commit)
