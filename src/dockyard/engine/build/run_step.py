"""RUN: the command in a real container made by the engine, its changes as a layer.

The container is an ordinary one (create, attach, start, wait), so RUN gets
the runtime's isolation, the network mode the build asks for, and the
daemon's events; its output is forwarded to the build's stream as it comes.
If the build is cancelled (the client went away) the container is killed
and removed before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dockyard.engine.build.profile import BuildProfile
from dockyard.engine.models import ContainerConfig, HostConfig
from dockyard.errors import DockyardError, NotFound, RuntimeFailure

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService

log = logging.getLogger("dockyard.build")


@dataclass
class RunRequest:
    image: str
    cmd: list[str]
    env: list[str]
    user: str = ""
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    host_config: HostConfig = field(default_factory=HostConfig)


class StepFailed(RuntimeFailure):
    """A RUN whose command failed: dockerd's words, its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


async def run_container(
    containers: ContainerService,
    req: RunRequest,
    stream: Callable[[str], None],
    remove_on_failure: bool,
    profile: BuildProfile | None = None,
) -> tuple[str, str]:
    """Run the command; return (container id, upper dir). The caller commits the
    upper dir, then calls `remove` (the container stays until then)."""
    config = ContainerConfig(
        image=req.image,
        cmd=req.cmd,
        entrypoint=[""],  # the image's ENTRYPOINT does not wrap a RUN
        env=req.env,
        user=req.user,
        working_dir=req.working_dir,
        labels=req.labels or None,
        attach_stdout=True,
        attach_stderr=True,
    )
    profile = profile or BuildProfile()
    with profile.phase("RUN container create"):
        c = await containers.create(config, req.host_config)
    stream(f" ---> Running in {c.id[:12]}\n")
    try:
        with profile.phase("RUN container start"):
            attached = await containers.attach(c.id, stream=True, stdout=True, stderr=True)
            exited = containers.waiter(c.id, "next-exit")
            await containers.start(c.id)
        with profile.phase("RUN command (until exit)"):
            async for _kind, data in attached.frames:
                stream(data.decode("utf-8", "replace"))
            state = await exited
        if state.exit_code != 0:
            raise StepFailed(
                f"The command '{' '.join(req.cmd)}' returned a non-zero code: {state.exit_code}",
                state.exit_code,
            )
        return c.id, f"{c.bundle}/upper"
    except BaseException as e:
        cancelled = isinstance(e, asyncio.CancelledError) or not isinstance(e, DockyardError)
        if cancelled or remove_on_failure:
            await remove(containers, c.id, stream if not cancelled else None)
        raise


async def remove(
    containers: ContainerService, container_id: str, stream: Callable[[str], None] | None
) -> None:
    """Kill (if it still runs) and remove a step's container, even while cancelled."""
    if stream is not None:
        stream(f"Removing intermediate container {container_id[:12]}\n")
    task = asyncio.ensure_future(_remove(containers, container_id))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task  # the removal completes before the cancellation goes on
        raise


async def _remove(containers: ContainerService, container_id: str) -> None:
    with contextlib.suppress(NotFound):
        await containers.remove(container_id, force=True)
