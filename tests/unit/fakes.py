"""An in-memory runtime and a small engine world for unit tests without root.

`FakeLauncher` stands in for `dockyard.runtime.launcher.Launcher`: `run()` reads
the process args from the bundle's config.json (as the real runtime does) and
returns a `FakeLink` whose output and exit the test scripts. A `program`
registered for argv[0] runs as a task once the container started; without one
the "process" runs until it is signalled or the test calls `link.exit()`.
Output emitted through a link is written to the json-file log first and then
published live, as the real monitor does.

`World` wires the real SQLite `Store`, a real `ImageStore` on tmp_path, the
real `ImageService` and `ContainerService` over the fake launcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import os
import signal
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import make_app
from dockyard.engine.clock import rfc3339
from dockyard.engine.containers import ContainerService
from dockyard.engine.images import ImageService
from dockyard.engine.models import ContainerConfig, HostConfig
from dockyard.engine.networking import ContainerNetworking
from dockyard.engine.services import Services
from dockyard.engine.store import Store
from dockyard.errors import RuntimeFailure
from dockyard.image.store import ImageStore
from dockyard.kernel.fake import RecordingKernel
from dockyard.runtime.state import ExitRecord

T = TypeVar("T")

# The body the 2013 docker client sent (seed-docker-internals-2013.txt), byte for byte.
SEED_CREATE = (
    b'{"Hostname":"","User":"","Memory":0,"MemorySwap":0,"CpuShares":0,"AttachStdin":false,'
    b'"AttachStdout":true,"AttachStderr":true,"PortSpecs":null,"Tty":false,"OpenStdin":false,'
    b'"StdinOnce":false,"Env":null,"Cmd":["/bin/echo","hello","world"],"Dns":null,'
    b'"Image":"ubuntu","Volumes":{},"VolumesFrom":"","Entrypoint":[],"NetworkDisabled":false}'
)

# Signals a fake process dies of unless it was told to ignore them.
FATAL = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP}


def async_test(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an `async def` test in a fresh event loop (no pytest-asyncio here)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout=10))

    return wrapper


def log_line(stream: int, data: bytes, time: str | None = None) -> bytes:
    doc = {
        "log": data.decode(),
        "stream": "stdout" if stream == 1 else "stderr",
        "time": time or rfc3339(),
    }
    return json.dumps(doc).encode() + b"\n"


class FakeLink:
    """A MonitorLink whose process is whatever the test says it is."""

    _next_pid = 1000

    def __init__(self, container_id: str, args: list[str], log_path: str) -> None:
        FakeLink._next_pid += 1
        self.container_id = container_id
        self.args = args
        self.pid = FakeLink._next_pid
        self.monitor_pid = self.pid - 500
        self.started_at = rfc3339()
        self.log_path = log_path
        self.kills: list[int] = []
        self.ignored: set[int] = set()  # signals the process survives
        self.stdin = bytearray()
        self.stdin_closed = False
        self.resizes: list[tuple[int, int]] = []
        self.closed = False
        self._queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._exit: asyncio.Future[ExitRecord] = asyncio.get_running_loop().create_future()

    # what the test (the "process") does

    def emit(self, stream: int, data: bytes, *, to_log: bool = True, live: bool = True) -> None:
        if to_log and self.log_path:
            with open(self.log_path, "ab") as f:
                f.write(log_line(stream, data))
        if live:
            self._queue.put_nowait((stream, data))

    def exit(self, code: int = 0, error: str = "") -> None:
        if self._exit.done():
            return
        self._exit.set_result(ExitRecord(exit_code=code, finished_at=rfc3339(), error=error))
        self._queue.put_nowait(None)

    @property
    def exited(self) -> bool:
        return self._exit.done()

    # the MonitorLink API

    async def frames(self):  # noqa: ANN201 - an async generator
        while (item := await self._queue.get()) is not None:
            yield item

    async def wait(self) -> ExitRecord:
        return await asyncio.shield(self._exit)

    async def kill(self, signum: int) -> None:
        self.kills.append(int(signum))
        if int(signum) in FATAL and int(signum) not in self.ignored:
            self.exit(128 + int(signum))

    async def write_stdin(self, data: bytes) -> None:
        self.stdin += data

    async def close_stdin(self) -> None:
        self.stdin_closed = True

    async def resize(self, height: int, width: int) -> None:
        self.resizes.append((height, width))

    async def close(self) -> None:
        self.closed = True


Program = Callable[[FakeLink], Awaitable[None]]


class FakeLauncher:
    def __init__(self) -> None:
        self.programs: dict[str, Program] = {}
        self.missing: set[str] = set()  # argv[0] that "do not exist" (exit 127)
        self.runtime_paths: list[str] = []  # the runtime_path of each run ("" = ours)
        self.not_executable: set[str] = set()  # argv[0] without x bit (exit 126)
        self.links: list[FakeLink] = []
        self.alive: dict[str, FakeLink] = {}  # what reattach() finds
        self.reattached: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def last(self, container_id: str) -> FakeLink:
        return [link for link in self.links if link.container_id == container_id][-1]

    def runs(self, container_id: str) -> int:
        return sum(1 for link in self.links if link.container_id == container_id)

    async def run(
        self, container_id: str, bundle_dir: str, *, log_path: str, runtime_path: str = ""
    ) -> FakeLink:
        self.runtime_paths.append(runtime_path)
        with open(os.path.join(bundle_dir, "config.json")) as f:
            args = json.load(f)["process"]["args"]
        if args[0] in self.missing:
            raise RuntimeFailure(
                f'exec: "{args[0]}": executable file not found in $PATH', "not-found"
            )
        if args[0] in self.not_executable:
            raise RuntimeFailure(f'exec: "{args[0]}": permission denied', "permission")
        link = FakeLink(container_id, args, log_path)
        self.links.append(link)
        program = self.programs.get(args[0])
        if program is not None:
            task = asyncio.create_task(program(link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return link

    async def reattach(self, container_id: str, bundle_dir: str) -> FakeLink | None:
        self.reattached.append(container_id)
        return self.alive.get(container_id)


async def echo(link: FakeLink) -> None:
    """/bin/echo: its args on stdout, exit 0."""
    link.emit(1, (" ".join(link.args[1:]) + "\n").encode())
    link.exit(0)


def exit_with(code: int, out: bytes = b"") -> Program:
    async def program(link: FakeLink) -> None:
        if out:
            link.emit(1, out)
        link.exit(code)

    return program


# -- a tiny image -------------------------------------------------------------


def rootfs_tar() -> bytes:
    """/etc/passwd, /etc/group, /bin/sh (a plain file: nothing ever executes it)."""
    files = {
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\n",
        "etc/group": b"root:x:0:\nwww:x:33:\n",
        "bin/sh": b"#!fake\n",
    }
    uid, gid = os.getuid(), os.getgid()  # no chown to someone else: runs without root
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, gid
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o755, uid, gid
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


_ROOTFS = rootfs_tar()


_OPEN_STORES: dict[str, Store] = {}


@dataclass
class World:
    root: Path
    launcher: FakeLauncher = field(default_factory=FakeLauncher)
    store: Store = field(init=False)
    images: ImageService = field(init=False)
    containers: ContainerService = field(init=False)
    kernel: RecordingKernel = field(init=False)
    networking: ContainerNetworking = field(init=False)

    def __post_init__(self) -> None:
        # A second World on the same root is the next daemon: the first one's process
        # (and its exclusive hold on the database) is gone by then.
        db_path = str(self.root / "dockyard.db")
        previous = _OPEN_STORES.pop(db_path, None)
        if previous is not None:
            previous.close()
        self.store = Store(db_path)
        _OPEN_STORES[db_path] = self.store
        self.images = ImageService(self.store, ImageStore(str(self.root)), str(self.root / "tmp"))
        # The networking of containers over the recording kernel: no interface,
        # rule or namespace is touched, and tests can look at what would have been.
        self.kernel = RecordingKernel()
        self.networking = ContainerNetworking(
            self.kernel, str(self.root), lock_path=str(self.root / "network.lock")
        )
        self.networking._start_sync()  # the recording kernel needs no worker thread
        self.containers = ContainerService(
            self.store, self.images, self.launcher, str(self.root), self.networking
        )

    @property
    def services(self) -> Services:
        return Services(containers=self.containers, images=self.images, data_root=str(self.root))

    async def image(self, repo: str = "ubuntu", tag: str = "", changes: list[str] = ()) -> str:
        async def body(f: Any) -> None:
            f.write(_ROOTFS)

        return await self.images.import_rootfs(body, repo=repo, tag=tag, changes=list(changes))

    async def create(self, image: str = "ubuntu", cmd: Any = ("/bin/true",), name: str = "", **kw):
        host = kw.pop("host_config", None) or HostConfig()
        config = ContainerConfig(image=image, cmd=list(cmd) if cmd is not None else None, **kw)
        return await self.containers.create(config, host, name)

    async def run(self, *args: Any, **kw: Any):
        c = await self.create(*args, **kw)
        await self.containers.start(c.id)
        return c

    async def restarted(self, launcher: FakeLauncher | None = None) -> World:
        """The daemon died and came back: new services over the same data root."""
        await self.containers.shutdown(live_restore=True)
        self.store.close()
        return World(self.root, launcher or FakeLauncher())


async def settle(rounds: int = 5) -> None:
    """Let the tasks the engine started (pumps, exit watchers) run."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def api_client(w: World) -> AsyncIterator[TestClient]:
    """The daemon's aiohttp app over the world's services, on a real local socket."""
    async with TestClient(TestServer(make_app(w.services))) as client:
        yield client


@contextlib.asynccontextmanager
async def api_server(w: World) -> AsyncIterator[TestServer]:
    """The app on a local TCP port, for clients that speak raw bytes (attach)."""
    async with TestServer(make_app(w.services)) as server:
        yield server


class RawConnection:
    """One TCP connection to the test server, bytes in and out, like the docker CLI's."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: TestServer) -> RawConnection:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        return cls(reader, writer)

    async def send(self, data: bytes, *, half_close: bool = False) -> None:
        self.writer.write(data)
        await self.writer.drain()
        if half_close:
            self.writer.write_eof()

    async def head(self) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 2)

    async def read_exactly(self, n: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), 2)

    async def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        return await asyncio.wait_for(self.reader.read(), 2)

    def close(self) -> None:
        self.writer.close()
