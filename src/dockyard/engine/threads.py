"""Long blocking work (unpacking, hashing, archiving) off the event loop.

Each job gets its own thread rather than a slot of the default executor: a
multi-GB load or a pull holds its thread for minutes, and the default pool
(cpu + 4 workers) would soon be full of them. Byte streams cross between the
loop and such a thread through an os.pipe, with bounded memory on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import BinaryIO, TypeVar

T = TypeVar("T")
PIPE_CHUNK = 1 << 20


def run_in_thread(fn: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Start `fn` in a new daemon thread; its result (or exception) completes the future."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result = fn()
        except BaseException as e:  # handed over to the loop
            loop.call_soon_threadsafe(settle, None, e)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


async def consume_in_thread(
    chunks: AsyncIterable[bytes], work: Callable[[BinaryIO], T], name: str
) -> T:
    """Run `work(stream)` in a thread while `chunks` are fed to `stream`.

    If `work` stops reading early (it failed), feeding stops and its own
    error is what is raised, not the broken pipe.
    """
    read_fd, write_fd = os.pipe()

    def run() -> T:
        with open(read_fd, "rb") as stream:
            return work(stream)

    job = run_in_thread(run, name)
    try:
        async for chunk in chunks:
            view = memoryview(chunk)
            while view and not job.done():
                try:
                    n = await asyncio.to_thread(os.write, write_fd, view)
                except BrokenPipeError:
                    break
                view = view[n:]
            if job.done():
                break
    except BaseException:
        # The upload broke off: `work` sees a truncated stream and fails;
        # wait for it, so that the caller's clean-up runs after it.
        os.close(write_fd)
        with contextlib.suppress(BaseException):
            await asyncio.shield(job)
        raise
    os.close(write_fd)  # end of stream for `work`
    return await job


async def produce_in_thread(
    work: Callable[[BinaryIO], None], write: Callable[[bytes], Awaitable[None]], name: str
) -> None:
    """Run `work(out)` in a thread and pass what it writes to `write` as it comes.

    If `write` fails (the client left), the thread's next write gets EPIPE
    and it stops; the write's error is raised.
    """
    read_fd, write_fd = os.pipe()

    def run() -> None:
        try:
            with open(write_fd, "wb") as out:
                work(out)
        except BrokenPipeError:
            pass  # the reader went away; its error is the one reported

    job = run_in_thread(run, name)
    try:
        while chunk := await asyncio.to_thread(os.read, read_fd, PIPE_CHUNK):
            await write(chunk)
    finally:
        os.close(read_fd)
        with contextlib.suppress(BaseException):
            await asyncio.shield(job)
    await job  # the producer's own error, if any
