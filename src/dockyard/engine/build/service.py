"""POST /build's job: receive the context, run the builder, clean up after it.

Whatever happens (a failed step, the client gone mid-build), the build's
private directory under the daemon's tmp dir goes, with every overlay
mounted there; RUN containers are removed by their step.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import threading
from collections.abc import AsyncIterable, Callable
from typing import TYPE_CHECKING, Any

from dockyard.engine.build import options as build_options
from dockyard.engine.build.builder import Builder
from dockyard.engine.build.context import fetch_context, receive_context
from dockyard.engine.build.copy_step import unmount_under
from dockyard.engine.build.profile import BuildProfile
from dockyard.engine.progress import ProgressStream
from dockyard.errors import InvalidParameter
from dockyard.image.reference import parse_reference
from dockyard.image.registry_auth import AuthConfig

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.images import ImageService


def registry_auths(header: str | None) -> dict[str, AuthConfig]:
    """X-Registry-Config: base64 JSON {registry: AuthConfig} (what FROM pulls use)."""
    if not header:
        return {}
    try:
        doc = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, TypeError, RecursionError):
        return {}
    if not isinstance(doc, dict):
        return {}
    out = {}
    for server, entry in doc.items():
        if isinstance(entry, dict):
            host = str(server).removeprefix("https://").removeprefix("http://").split("/")[0]
            if host in ("index.docker.io", "registry-1.docker.io"):
                host = "docker.io"
            out[host] = AuthConfig(
                username=str(entry.get("username") or ""),
                password=str(entry.get("password") or ""),
                identity_token=str(entry.get("identitytoken") or ""),
            )
    return out


class _Forwarded(ProgressStream):
    """Pull progress of a FROM image, sent into the build's own stream."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self._forward = emit

    def emit(self, message: dict[str, Any]) -> None:
        if self._loop_thread == threading.get_ident():
            self._forward(message)
        else:
            self._loop.call_soon_threadsafe(self._forward, message)


def check_options(opts: build_options.BuildOptions, images: ImageService) -> None:
    """What can be refused before the answer starts (an HTTP error, not a stream one)."""
    build_options.check(opts)
    for tag in opts.tags:
        parse_reference(tag)
    for ref in opts.cache_from:
        images.resolve(ref)
    if opts.platform:
        from dockyard.engine.image_pull import parse_platform
        from dockyard.image.store import go_architecture

        want = parse_platform(opts.platform)
        if (want.os, want.architecture) != ("linux", go_architecture()):
            raise InvalidParameter(
                f"platform {opts.platform}: only linux/{go_architecture()} images can be built here"
            )


async def build(
    containers: ContainerService,
    images: ImageService,
    chunks: AsyncIterable[bytes],
    opts: build_options.BuildOptions,
    emit: Callable[[dict[str, Any]], None],
    auths: dict[str, AuthConfig] | None = None,
) -> str:
    build_options.check(opts)
    for tag in opts.tags:
        parse_reference(tag)  # before the context is even read
    from dockyard.kernel.linux import LinuxKernel

    kernel = LinuxKernel()

    work = os.path.join(images.tmp_dir, "build-" + secrets.token_hex(8))
    os.makedirs(work, mode=0o700)
    profile = BuildProfile()
    ok = False
    try:
        root = os.path.join(work, "context")
        with profile.phase("context upload+index"):
            if opts.remote:
                context = await fetch_context(opts.remote, root, kernel)
            else:
                context = await receive_context(chunks, root, kernel)

        async def pull(ref: str) -> None:
            parsed = parse_reference(ref)
            auth = (auths or {}).get(parsed.domain, AuthConfig())
            await images.pull(ref, "", auth, _Forwarded(emit), platform=opts.platform or None)

        builder = Builder(containers, images, kernel, context, opts, emit, work, pull, profile)
        image_id = await builder.build()
        ok = True
        return image_id
    finally:
        with profile.phase("cleanup"):
            unmount_under(work)
            _remove_later(work)
        profile.finish(opts.no_cache, ok)


_removals: set[asyncio.Task[None]] = set()


def _remove_later(work: str) -> None:
    """The build's directory goes after the answer: renamed away at once (out of
    any build's sight), deleted in a thread; unlinking a context's files can take
    longer than the whole cached build (a daemon start sweeps what is left)."""
    trash = os.path.join(os.path.dirname(work), "removing-" + os.path.basename(work))
    try:
        os.rename(work, trash)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)
        return
    task = asyncio.get_running_loop().create_task(
        asyncio.to_thread(shutil.rmtree, trash, ignore_errors=True)
    )
    _removals.add(task)
    task.add_done_callback(_removals.discard)
