"""Operations on a container beside its lifecycle: pause/unpause, rename, top.

They act through ContainerService's public face (get, save, link_of, emit)."""

from __future__ import annotations

import asyncio
import os
import posixpath

from dockyard.engine import container_top
from dockyard.engine.containers import ContainerService
from dockyard.engine.images import ImageService
from dockyard.engine.models import Container
from dockyard.engine.names import validate_name
from dockyard.errors import Conflict, InvalidParameter
from dockyard.image import layer_changes
from dockyard.image.mount_stubs import mount_stubs
from dockyard.kernel import procfs


def _running(svc: ContainerService, ref: str) -> Container:
    c = svc.get(ref)
    if not c.state.running or svc.link_of(c) is None:
        raise Conflict(f"Container {c.id} is not running")
    return c


async def pause(svc: ContainerService, ref: str) -> None:
    c = _running(svc, ref)
    if c.state.paused:
        raise Conflict(f"Container {c.id} is already paused")
    link = svc.link_of(c)
    assert link is not None
    await link.pause()
    c.state.paused = True
    c.state.status = "paused"
    svc.save(c)
    svc.emit(c, "pause")


async def unpause(svc: ContainerService, ref: str) -> None:
    c = _running(svc, ref)
    if not c.state.paused:
        raise Conflict(f"Container {c.id} is not paused")
    link = svc.link_of(c)
    assert link is not None
    await link.resume()
    c.state.paused = False
    c.state.status = "running"
    svc.save(c)
    svc.emit(c, "unpause")


def rename(svc: ContainerService, ref: str, new_name: str) -> None:
    c = svc.get(ref)
    if not new_name.strip("/"):
        raise InvalidParameter("Neither old nor new names may be empty")
    full = validate_name(new_name)
    old = c.name
    if full == old:
        raise InvalidParameter("Renaming a container with the same name as its current name")
    try:
        svc.check_name_free(full)
    except Conflict as e:
        raise Conflict(f"Error when allocating new name: {e}") from None
    c.name = full
    svc.save(c)
    svc.emit(c, "rename", oldName=old)


async def diff(svc: ContainerService, images: ImageService, ref: str) -> list[dict]:
    """GET /containers/{id}/changes: [{"Path", "Kind"}] from the container's layer."""
    c = svc.get(ref)
    lowers = images.blobs.lower_dirs(c.image)
    upper = os.path.join(c.bundle, "upper")
    found = await asyncio.to_thread(_changes_without_stubs, upper, lowers)
    return [{"Path": path, "Kind": kind} for path, kind in found]


def _changes_without_stubs(upper: str, lowers: list[str]) -> list[tuple[str, int]]:
    """dockerd keeps the mount points of /etc/hosts & co in an init layer, which its
    diff does not show: leave them out, and a directory changed only by them."""
    stubs = {"/" + rel for rel in mount_stubs(upper, lowers)}
    found = [(p, k) for p, k in layer_changes.changes(upper, lowers) if p not in stubs]
    stub_parents = {posixpath.dirname(s) for s in stubs}
    return [
        (p, k)
        for p, k in found
        if not (
            k == layer_changes.MODIFIED
            and p in stub_parents
            and not any(q.startswith(p + "/") for q, _ in found)
        )
    ]


async def prune(svc: ContainerService, filters: dict[str, list[str]]) -> tuple[list[str], int]:
    """POST /containers/prune: remove stopped containers (filters until=, label=, label!=)."""
    for key in filters:
        if key not in ("until", "label", "label!"):
            raise InvalidParameter(f"invalid filter '{key}'")
    until = None
    for value in filters.get("until", []):
        until = _until(value)
    deleted: list[str] = []
    reclaimed = 0
    for c in svc.list(all_=True):
        if c.state.running or c.state.status == "removing":
            continue
        if until is not None and c.created_unix >= until:
            continue
        labels = c.config.labels or {}
        if not all(_label_match(labels, w) for w in filters.get("label", [])):
            continue
        if any(_label_match(labels, w) for w in filters.get("label!", [])):
            continue
        rw, _ = await svc.size(c)
        try:
            await svc.remove(c.id)
        except Conflict:
            continue  # started meanwhile
        deleted.append(c.id)
        reclaimed += rw
    svc.events.emit("container", "prune", "", {"reclaimed": str(reclaimed)})
    return deleted, reclaimed


def _label_match(labels: dict[str, str], want: str) -> bool:
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _until(value: str) -> float:
    """A timestamp (unix, RFC 3339) or a Go duration meaning that long ago."""
    import re
    import time

    from dockyard.engine.clock import parse_rfc3339

    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", value)
    if parts and "".join(n + u for n, u in parts) == value:
        return time.time() - sum(float(n) * units[u] for n, u in parts)
    try:
        return float(value)
    except ValueError:
        pass
    ts = parse_rfc3339(value if value.endswith("Z") or "+" in value[10:] else value + "Z")
    if not ts:
        raise InvalidParameter(f"invalid filter 'until={value}'")
    return ts


def container_pids(c: Container) -> set[int]:
    """Every process in the container's pid namespace (its init, children, execs)."""
    return procfs.pid_namespace_members(c.state.pid)


async def top(svc: ContainerService, ref: str, ps_args: str = "") -> dict:
    """dockerd's top (container_top.py): `ps -ef`'s table read from /proc, or the
    host's `ps` with the user's ps_args, cut to the container's processes."""
    c = _running(svc, ref)
    pids = container_pids(c)
    if ps_args:
        result = await container_top.ps_with_args(ps_args, pids)
    else:
        result = {"Titles": container_top.EF_TITLES, "Processes": container_top.ps_ef(pids)}
    svc.emit(c, "top")
    return result
