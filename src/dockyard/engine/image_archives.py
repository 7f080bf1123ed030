"""`docker save` and `docker load` for the image service: which names an archive
carries, streaming it out, and loading one all or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import IO, TYPE_CHECKING, Protocol

from dockyard.engine.progress import ProgressStream, short
from dockyard.engine.threads import produce_in_thread, run_in_thread
from dockyard.errors import InvalidParameter
from dockyard.image.archive import LoadedImage, LoadJournal, SavedImage, load_images, save_images
from dockyard.image.digest import chain_ids
from dockyard.image.reference import Reference, is_image_id, parse_reference

if TYPE_CHECKING:
    from dockyard.engine.images import ImageService


def save_plan(svc: ImageService, names: list[str], platform: str | None = None) -> list[SavedImage]:
    """Which images (and which of their tags) `docker save NAME...` writes.

    dockerd's rules: a bare repository name saves every tag of it, a
    name:tag that tag, an id (or id prefix) the image without tags.
    """
    if not names:
        raise InvalidParameter("no images to save")
    plan: dict[str, list[str]] = {}
    for name in names:
        for image_id, ref in _save_targets(svc, name):
            tags = plan.setdefault(image_id, [])
            if ref is not None and ref not in tags:
                tags.append(ref)
    for image_id in plan:
        svc.check_platform(image_id, platform)
    return [SavedImage(image_id, tags) for image_id, tags in plan.items()]


def _save_targets(svc: ImageService, name: str) -> list[tuple[str, str | None]]:
    if is_image_id(name):
        return [(svc.resolve(name), None)]
    try:
        ref: Reference | None = parse_reference(name, default_tag=None)
    except InvalidParameter:
        ref = None
    if ref is not None and ref.digest is not None:
        return [(svc.resolve(name), None)]  # name@digest (from a pull): the image, untagged
    if ref is not None and ref.tag is None:
        found = [
            (image_id, tag)
            for tag, image_id in sorted(svc.tagged().items())
            if parse_reference(tag).name == ref.name
        ]
        if found:
            return found
        return [(svc.resolve(name), None)]  # an id prefix, or "No such image"
    image_id = svc.resolve(name)
    return [(image_id, str(ref) if ref is not None and str(ref) in svc.tagged() else None)]


async def save(
    svc: ImageService, plan: list[SavedImage], write: Callable[[bytes], Awaitable[None]]
) -> None:
    """Stream `docker save` of `plan` to `write`, with the layers pinned meanwhile."""

    def work(out: IO[bytes]) -> None:
        with svc.blobs.lease():
            for image in plan:
                for chain in chain_ids(svc.blobs.image_diff_ids(image.image_id)):
                    svc.blobs.pin(chain)
            save_images(svc.blobs, plan, out)

    await produce_in_thread(work, write, "image-save")


async def load(
    svc: ImageService,
    chunks: AsyncIterable[bytes] | Readable,
    progress: ProgressStream | None = None,
    platform: str | None = None,
) -> list[str]:
    """`docker load`: import every image of the archive, then name them all.

    All or nothing: until every image of the archive is in the store no
    name changes, and a failure removes what this load added. Returns
    the lines dockerd prints ("Loaded image: busybox:latest"). With
    `progress`, each layer's reading is reported as dockerd's
    "Loading layer" messages.
    """
    loop = asyncio.get_running_loop()
    journal = LoadJournal()
    lines: list[str] = []

    def report(diff_id: str, current: int, total: int) -> None:
        assert progress is not None
        progress.progress("Loading layer", short(diff_id), current, total, force=current >= total)

    def work(stream: IO[bytes]) -> None:
        # The lease spans the naming (done on the loop), so that no
        # concurrent rmi/prune can take a layer before its image is named.
        with svc.blobs.lease():
            loaded = load_images(
                svc.blobs, stream, journal, report if progress is not None else None
            )
            for image in loaded:
                svc.check_platform(image.image_id, platform)
            asyncio.run_coroutine_threadsafe(_name_loaded(svc, loaded, lines), loop).result()

    try:
        if isinstance(chunks, AsyncIterable):
            await _consume_in_thread(chunks, work)
        else:
            await _read_in_thread(chunks, work)
    except BaseException:
        svc.blobs.discard(journal.chains, journal.configs, keep=svc.image_ids())
        raise
    return lines


class Readable(Protocol):
    """A blocking stream (the API's body read from its socket), closed by its reader."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readinto(self, buf: memoryview, /) -> int: ...

    def close(self) -> None: ...


async def _read_in_thread(stream: Readable, work: Callable[[IO[bytes]], None]) -> None:
    """`work(stream)` in its own thread, which closes the stream when done; waited
    for even if the request is cancelled (nothing may still read or write then)."""

    def run() -> None:
        try:
            work(stream)  # type: ignore[arg-type]
        finally:
            stream.close()

    job = run_in_thread(run, "image-load")
    try:
        await asyncio.shield(job)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await job
        raise


async def _name_loaded(svc: ImageService, loaded: list[LoadedImage], lines: list[str]) -> None:
    for image in loaded:
        svc.name_image(image.image_id, None)
        for ref in image.repo_tags:
            previous = svc.name_image(image.image_id, ref)
            if previous is not None:
                lines.append(
                    f"The image {ref} already exists, renaming the old one with ID "
                    f"{previous} to empty string"
                )
            lines.append(f"Loaded image: {ref}")
        if not image.repo_tags:
            lines.append(f"Loaded image ID: {image.image_id}")
        svc.emit("load", image.image_id, image.image_id)


class _ChunkStream:
    """The upload as a blocking stream for the load thread, fed by the event loop
    through a bounded queue: no pipe and no thread hop per chunk (a 160 MB
    upload is thousands of chunks), memory bounded by the queue."""

    _LIMIT = 16  # chunks in flight (aiohttp hands out at most 1 MiB each)

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(self._LIMIT)
        self._rest = memoryview(b"")
        self._ended = False

    def readinto(self, buf: memoryview) -> int:
        while not self._rest:
            if self._ended:
                return 0
            chunk = self.queue.get()
            if chunk is None:
                self._ended = True
                return 0
            self._rest = memoryview(chunk)
        n = min(len(buf), len(self._rest))
        buf[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 20
        buf = bytearray(size)
        n = self.readinto(memoryview(buf))
        return bytes(buf[:n])


async def _consume_in_thread(
    chunks: AsyncIterable[bytes], work: Callable[[IO[bytes]], None]
) -> None:
    """Run `work(stream)` in its own thread while the upload's chunks feed it. If
    `work` stops reading (it failed), feeding stops and its error is raised; if
    the upload breaks off, `work` sees a truncated stream and fails first."""
    stream = _ChunkStream()
    job = run_in_thread(lambda: work(stream), "image-load")  # type: ignore[arg-type]

    async def put(item: bytes | None) -> None:
        while not job.done():
            try:
                stream.queue.put_nowait(item)
                return
            except queue.Full:
                # The thread is behind: wait for room without blocking the loop.
                await asyncio.sleep(0.002)

    try:
        async for chunk in chunks:
            if job.done():
                break
            if chunk:
                await put(chunk)
    except BaseException:
        await put(None)
        with contextlib.suppress(BaseException):
            await asyncio.shield(job)
        raise
    await put(None)
    await job
