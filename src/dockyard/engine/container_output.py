"""A container's output for clients: attach (log replay, then live frames), resize, logs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from dockyard.engine.clock import parse_rfc3339
from dockyard.engine.container_records import ContainerRecords
from dockyard.engine.logs import LogBatch, read_log, read_log_batches
from dockyard.engine.models import Container
from dockyard.errors import Conflict, InvalidParameter


@dataclass
class AttachStreams:
    """An attach in progress: logs replayed first, then live frames until exit."""

    frames: AsyncIterator[tuple[int, bytes]]
    tty: bool
    stdin: Callable[[bytes], Awaitable[None]] | None
    close_stdin: Callable[[], Awaitable[None]] | None


class ContainerOutput(ContainerRecords):
    """attach, resize and logs."""

    async def attach(
        self,
        ref: str,
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        logs: bool = False,
        stream: bool = True,
        wait_for_start: bool = True,
    ) -> AttachStreams:
        """Replay the log (logs) and/or follow live output (stream).

        A stream on a container that is not running waits for its next run, as
        `docker start -a` needs; `wait_for_start=False` (the 2013 API) ends at once.
        """
        c = self.get(ref)
        live = self._live_of(c.id)
        queue = None
        seen_run, seen = live.hub.run, dict(live.hub.published)
        if stream:
            self.emit(c, "attach")
        if stream and (c.state.running or wait_for_start):
            queue = live.hub.subscribe()

        async def frames() -> AsyncIterator[tuple[int, bytes]]:
            # Bytes of the live run the log replay already gave, per stream.
            overlap = {1: 0, 2: 0}
            try:
                if logs:
                    run_start = parse_rfc3339(c.state.started_at) if c.state.running else 0.0
                    async for e in read_log(c.log_path, stdout=stdout, stderr=stderr):
                        if run_start and parse_rfc3339(e.time) >= run_start:
                            overlap[e.stream] += len(e.data)
                        yield e.stream, e.data
                    # What was published before we subscribed is not in our queue.
                    if live.hub.run == seen_run:
                        for k in overlap:
                            overlap[k] = max(0, overlap[k] - seen.get(k, 0))
                if queue is None:
                    return
                while (frame := await queue.get()) is not None:
                    kind, data = frame
                    if overlap.get(kind):
                        cut = min(overlap[kind], len(data))
                        overlap[kind] -= cut
                        data = data[cut:]
                    if data and ((kind == 1 and stdout) or (kind == 2 and stderr)):
                        yield kind, data
            finally:
                if queue is not None:
                    live.hub.unsubscribe(queue)

        write = close = None
        if stdin and c.config.open_stdin:
            # `docker run -i` sends stdin before it starts the container: hold it until then.
            async def write(data: bytes) -> None:
                await live.running.wait()
                if live.link is not None:
                    await live.link.write_stdin(data)

            async def close() -> None:
                await live.running.wait()
                if c.config.tty:
                    # dockerd (stream.AttachStreams): a client's EOF never closes a tty's
                    # input (a terminal that went away must not end the shell in it);
                    # that client's attach ends instead, the container runs on.
                    if queue is not None:
                        queue.put_nowait(None)
                elif c.config.stdin_once and live.link is not None:
                    await live.link.close_stdin()

        return AttachStreams(frames(), c.config.tty, write, close)

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        live = self._live_of(c.id)
        if not c.state.running or live.link is None:
            raise Conflict(f"Container {c.id} is not running")
        await live.link.resize(height, width)
        self.emit(c, "resize", height=str(height), width=str(width))

    def logs(
        self,
        ref: str,
        *,
        stdout: bool,
        stderr: bool,
        tail: int | None,
        since: float,
        until: float,
        follow: bool,
    ) -> tuple[Container, AsyncIterator[LogBatch]]:
        c = self.get(ref)
        if c.host_config.log_config.type not in ("json-file", "local", ""):
            raise InvalidParameter("configured logging driver does not support reading")

        def running() -> bool:
            current = self._containers.get(c.id)
            return current is not None and current.state.running

        return c, read_log_batches(
            c.log_path,
            stdout=stdout,
            stderr=stderr,
            tail=tail,
            since=since,
            until=until,
            follow=follow and c.state.running,
            running=running,
        )
