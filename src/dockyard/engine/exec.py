"""docker exec: processes run inside a running container.

An exec is created (its config checked and kept), then started once: the
runtime's exec monitor joins the container's namespaces and cgroup with the
container's capabilities, seccomp and no-new-privileges (all capabilities and
no seccomp filter with --privileged). Like dockerd, exec records live in
memory only and go with their container.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import msgspec

from dockyard.engine.containers import ContainerService
from dockyard.engine.environ import replace_or_append
from dockyard.engine.events import EventBus
from dockyard.engine.images import ImageService
from dockyard.engine.models import Container, strslice
from dockyard.errors import Conflict, InvalidParameter, NotFound, RuntimeFailure
from dockyard.image.users import parse_passwd, resolve_user
from dockyard.runtime.launcher import ExecSpec, Launcher, MonitorLink
from dockyard.runtime.spec import DEFAULT_PATH

log = logging.getLogger("dockyard.exec")

# Finished execs kept per container for inspect (dockerd keeps them until the
# container stops; a loop of `exec` must not grow the daemon without bound).
MAX_FINISHED_PER_CONTAINER = 64


class ExecConfig(msgspec.Struct, rename="pascal"):
    """The body of POST /containers/{id}/exec."""

    user: str = ""
    privileged: bool = False
    tty: bool = False
    console_size: list[int] | None = None
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    detach_keys: str = ""
    env: list[str] | None = None
    working_dir: str = ""
    cmd: list[str] | str | None = None


class ExecStartConfig(msgspec.Struct, rename="pascal"):
    """The body of POST /exec/{id}/start."""

    detach: bool = False
    tty: bool = False
    console_size: list[int] | None = None


@dataclass
class Exec:
    id: str
    container_id: str
    config: ExecConfig
    args: list[str]
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    link: MonitorLink | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class ExecStreams:
    """A started exec: its output until it exits, and its stdin."""

    frames: AsyncIterator[tuple[int, bytes]]
    tty: bool
    stdin: Callable[[bytes], Awaitable[None]] | None
    close_stdin: Callable[[], Awaitable[None]] | None
    error: str = ""  # the process could not start (its exit code is 126 or 127)


class ExecService:
    def __init__(
        self,
        containers: ContainerService,
        images: ImageService,
        launcher: Launcher,
        events: EventBus,
    ) -> None:
        self._containers = containers
        self._images = images
        self._launcher = launcher
        self._events = events
        self._execs: dict[str, Exec] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, exec_id: str) -> Exec:
        ex = self._execs.get(exec_id)
        if ex is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return ex

    def _running_container(self, ref: str) -> Container:
        c = self._containers.get(ref)
        if c.state.paused:
            # dockerd's errExecPaused names the container as the client did
            raise Conflict(f"Container {ref} is paused, unpause the container before exec")
        if not c.state.running:
            raise Conflict(f"container {c.id} is not running")
        return c

    def create(self, ref: str, config: ExecConfig) -> str:
        c = self._running_container(ref)
        args = strslice(config.cmd) or []
        if not args:
            raise InvalidParameter("No exec command specified")
        if config.working_dir and not config.working_dir.startswith("/"):
            raise InvalidParameter(
                f"the working directory '{config.working_dir}' is invalid, it needs to be an absolute path"
            )
        if config.console_size is not None and len(config.console_size) != 2:
            raise InvalidParameter("ConsoleSize must be [height, width]")
        for e in config.env or []:
            if not e.split("=", 1)[0]:
                raise InvalidParameter(f"invalid environment variable: {e}")
        self._forget_finished(c.id)
        ex = Exec(secrets.token_hex(32), c.id, config, args)
        self._execs[ex.id] = ex
        self._emit(c, "exec_create: " + " ".join(args), ex.id)
        return ex.id

    def _forget_finished(self, container_id: str) -> None:
        finished = [
            e for e in self._execs.values() if e.container_id == container_id and e.done.is_set()
        ]
        for e in finished[: max(0, len(finished) - MAX_FINISHED_PER_CONTAINER + 1)]:
            del self._execs[e.id]

    def forget_container(self, container_id: str) -> None:
        """The container is removed: so are its execs (dockerd's exec store)."""
        for e in [e for e in self._execs.values() if e.container_id == container_id]:
            del self._execs[e.id]

    def _emit(self, c: Container, action: str, exec_id: str, **extra: str) -> None:
        attrs = {"execID": exec_id, "image": c.config.image, "name": c.name.lstrip("/")}
        attrs.update(extra)
        attrs.update(c.config.labels or {})
        self._events.emit("container", action, c.id, attrs)

    def _spec(self, c: Container, ex: Exec, tty: bool) -> ExecSpec:
        cfg = ex.config
        lower = self._images.blobs.lower_dirs(c.image)
        dirs = [f"{c.bundle}/upper", *lower]

        def read(path: str) -> bytes | None:
            return self._images.blobs.read_file(dirs, path)

        uid = gid = groups = None
        user = cfg.user or c.config.user
        if cfg.user:
            uid, gid, groups = resolve_user(cfg.user, read)
        # dockerd's CreateDaemonEnvironment, then the exec's own values win.
        base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={c.config.hostname}"]
        if tty:
            base.append("TERM=xterm")
        merged = dict(
            e.split("=", 1)
            for e in replace_or_append(replace_or_append(base, c.config.env or []), cfg.env or [])
        )
        if "HOME" not in merged:
            home_uid = uid if uid is not None else resolve_user(user, read)[0]
            merged["HOME"] = next(
                (
                    p.home or "/"
                    for p in parse_passwd(read("/etc/passwd") or b"")
                    if p.uid == home_uid
                ),
                "/",
            )
        return ExecSpec(
            args=ex.args,
            env=[f"{k}={v}" for k, v in merged.items()],
            cwd=cfg.working_dir or c.config.working_dir or "/",
            uid=uid,
            gid=gid,
            additional_gids=groups,
            terminal=tty,
            open_stdin=cfg.attach_stdin,
            privileged=cfg.privileged,
        )

    def check_startable(self, exec_id: str) -> Exec:
        """404/409 now, before an API answer's head goes out."""
        ex = self.get(exec_id)
        if ex.running:
            raise Conflict(f"Error: Exec command {exec_id} is already running")
        if ex.started:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        self._running_container(ex.container_id)
        return ex

    async def start(self, exec_id: str, start: ExecStartConfig) -> ExecStreams:
        """Run the exec; the returned frames end once it has exited and its code is known."""
        ex = self.check_startable(exec_id)
        c = self._running_container(ex.container_id)
        ex.started = True
        tty = ex.config.tty or start.tty
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        # Output goes to the client while one reads it; after it left, it is dropped.
        attached = [not start.detach]
        try:
            spec = self._spec(c, ex, tty)
            link = await self._launcher.exec(c.id, c.bundle, spec)
        except (RuntimeFailure, InvalidParameter, NotFound) as e:
            # As dockerd: the start answers, its stream carries the error, the code is kept.
            kind = getattr(e, "kind", "other")
            ex.exit_code = {"not-found": 127, "permission": 126}.get(kind, 126)
            ex.done.set()
            if start.detach:
                raise
            queue.put_nowait(None)
            return ExecStreams(_drain(queue, attached), tty, None, None, error=e.message)
        ex.link, ex.pid, ex.running = link, link.pid, True
        self._emit(c, "exec_start: " + " ".join(ex.args), ex.id)
        size = start.console_size or ex.config.console_size
        if tty and size and len(size) == 2 and size[0] > 0 and size[1] > 0:
            await link.resize(size[0], size[1])

        async def follow() -> None:
            try:
                async for frame in link.frames():
                    if attached[0]:
                        queue.put_nowait(frame)
                record = await link.wait()
            finally:
                await link.close()
            ex.exit_code = record.exit_code
            ex.running, ex.link = False, None
            ex.done.set()
            with contextlib.suppress(NotFound):  # the container may be gone by now
                current = self._containers.get(c.id)
                self._emit(current, "exec_die", ex.id, exitCode=str(record.exit_code))
            queue.put_nowait(None)

        task = asyncio.create_task(follow())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

        write = close = None
        if ex.config.attach_stdin and attached[0]:

            async def write(data: bytes) -> None:
                if ex.link is not None:
                    await ex.link.write_stdin(data)

            async def close() -> None:
                if tty:
                    # as for an attach to a tty: the client's EOF ends its stream, not
                    # the process's input (dockerd's stream.AttachStreams)
                    attached[0] = False
                    queue.put_nowait(None)
                elif ex.link is not None:
                    await ex.link.close_stdin()

        return ExecStreams(_drain(queue, attached), tty, write, close)

    async def run_probe(
        self, ref: str, argv: list[str], timeout: float, max_output: int
    ) -> tuple[int | None, str]:
        """Run a health probe: (exit code, first bytes of stdout+stderr); (None, ...) if
        it outlived `timeout` (it is killed then)."""
        exec_id = self.create(
            ref, ExecConfig(attach_stdout=True, attach_stderr=True, cmd=list(argv))
        )
        streams = await self.start(exec_id, ExecStartConfig())
        ex = self.get(exec_id)
        out = bytearray()

        async def collect() -> None:
            async for _kind, data in streams.frames:
                if len(out) < max_output:
                    out.extend(data[: max_output - len(out)])

        try:
            await asyncio.wait_for(collect(), timeout)
        except TimeoutError:
            if ex.link is not None:
                with contextlib.suppress(Exception):
                    await ex.link.kill(9)
            return None, ""
        return ex.exit_code, out.decode("utf-8", "replace")

    async def resize(self, exec_id: str, height: int, width: int) -> None:
        ex = self.get(exec_id)
        if ex.link is None or not ex.running:
            raise Conflict(f"Exec {exec_id} is not running")
        await ex.link.resize(height, width)

    def inspect(self, exec_id: str) -> dict:
        ex = self.get(exec_id)
        cfg = ex.config
        return {
            "CanRemove": False,
            "ContainerID": ex.container_id,
            "DetachKeys": cfg.detach_keys,
            "ExitCode": ex.exit_code,
            "ID": ex.id,
            "OpenStderr": cfg.attach_stderr,
            "OpenStdin": cfg.attach_stdin,
            "OpenStdout": cfg.attach_stdout,
            "ProcessConfig": {
                "arguments": ex.args[1:],
                "entrypoint": ex.args[0],
                "privileged": cfg.privileged,
                "tty": cfg.tty,
                "user": cfg.user,
            },
            "Running": ex.running,
            "Pid": ex.pid,
        }

    def exec_ids(self, container_id: str) -> list[str]:
        """The ExecIDs of a container's inspect: its execs that have not finished."""
        return [
            e.id
            for e in self._execs.values()
            if e.container_id == container_id and not e.done.is_set()
        ]

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()


async def _drain(
    queue: asyncio.Queue[tuple[int, bytes] | None], attached: list[bool]
) -> AsyncIterator[tuple[int, bytes]]:
    try:
        while (frame := await queue.get()) is not None:
            yield frame
    finally:
        attached[0] = False
