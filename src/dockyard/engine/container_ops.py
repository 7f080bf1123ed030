"""Operations on a container beside its lifecycle: pause/unpause, rename, top.

They act through ContainerService's public face (get, save, link_of, emit)."""

from __future__ import annotations

import asyncio
import os
import shlex

from dockyard.engine.containers import ContainerService
from dockyard.engine.models import Container
from dockyard.engine.names import validate_name
from dockyard.errors import Conflict, InvalidParameter


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
    svc.check_name_free(full)
    c.name = full
    svc.save(c)
    svc.emit(c, "rename", oldName=old)


def container_pids(c: Container) -> set[int]:
    """Every process in the container's pid namespace (its init, children, execs)."""
    try:
        ns = os.readlink(f"/proc/{c.state.pid}/ns/pid")
    except OSError:
        return set()
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    pids.add(int(entry))
            except OSError:
                continue  # gone meanwhile
    return pids


async def top(svc: ContainerService, ref: str, ps_args: str = "") -> dict:
    """dockerd's top: the host's `ps` with the user's arguments, cut to the container's pids."""
    c = _running(svc, ref)
    try:
        args = shlex.split(ps_args or "-ef")
    except ValueError as e:
        raise InvalidParameter(f"invalid ps arguments: {e}") from None
    proc = await asyncio.create_subprocess_exec(
        "ps",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise InvalidParameter(
            f"Error running ps: exit status {proc.returncode}: {err.decode(errors='replace').strip()}"
        )
    lines = out.decode(errors="replace").splitlines()
    if not lines:
        raise InvalidParameter("Error running ps: no output")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidParameter("Couldn't find PID field in ps output")
    pid_col = titles.index("PID")
    pids = container_pids(c)
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) <= pid_col:
            continue
        try:
            pid = int(fields[pid_col])
        except ValueError:
            raise InvalidParameter(f"Unexpected pid '{fields[pid_col]}'") from None
        if pid in pids:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}
