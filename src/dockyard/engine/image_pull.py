"""`docker pull`: an image from a Distribution v2 registry into the store.

Layers download in parallel (three at a time, as dockerd) and each is
unpacked as it arrives, into temporaries (the blob streams through a pipe
into an unpacking thread while its digest is computed); an unpacked layer
is checked against the diff_id of the image config and committed in order,
once its parent is. Nothing is named until the whole image is in the store;
a failure removes what the pull added.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from isal import igzip, isal_zlib

from dockyard.engine.distribution_metadata import CompressedBlob
from dockyard.engine.pipe_feed import PipeFeed
from dockyard.engine.progress import ProgressStream, short
from dockyard.engine.threads import run_in_thread
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.image.digest import chain_ids, normalize_digest
from dockyard.image.reference import Reference
from dockyard.image.registry import (
    DOCKER_MANIFEST,
    INDEX_TYPES,
    OCI_MANIFEST,
    Registry,
    RegistryError,
    new_session,
)
from dockyard.image.registry_auth import AuthConfig
from dockyard.image.store import ImageStore, Layer, UnpackedLayer, go_architecture
from dockyard.image.tarsafe import Readable

if TYPE_CHECKING:
    from dockyard.engine.images import ImageService

MAX_CONCURRENT_DOWNLOADS = 3
MAX_CONFIG = 8 << 20
_RESUME_RESTARTS = 2  # whole-layer restarts when the registry cannot resume
_PIPE_READ = 1 << 16
_LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
}
_FOREIGN_TYPES = {
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}


@dataclass
class Platform:
    os: str = "linux"
    architecture: str = ""
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_platform(text: str | None) -> Platform:
    """'linux/arm64/v8', 'linux/amd64', 'amd64' (as containerd's platforms.Parse)."""
    if not text:
        return Platform("linux", go_architecture())
    parts = text.lower().split("/")
    if len(parts) == 1:
        if parts[0] == "linux":
            return Platform("linux", go_architecture())
        return Platform("linux", parts[0])
    if len(parts) > 3 or not all(parts):
        raise InvalidParameter(
            f'"{text}": unknown operating system or architecture: invalid argument'
        )
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


@dataclass
class _Layer:
    digest: str  # of the blob as the registry stores it
    size: int
    diff_id: str
    chain_id: str
    media_type: str


async def pull(
    svc: ImageService,
    ref: Reference,
    auth: AuthConfig,
    progress: ProgressStream,
    platform: str | None = None,
) -> str:
    """Pull `ref` (a tag or a digest); name it; return the image id."""
    want = parse_platform(platform)
    reference = ref.digest or ref.tag or "latest"
    async with new_session() as session:
        registry = Registry(session, ref.domain, auth, svc.insecure)
        body, media_type, manifest_digest = await registry.get_manifest(ref.path, reference)
        # As dockerd: only once the manifest is found (an unknown tag is a plain 404).
        progress.status(f"Pulling from {ref.path}", reference, detail=False)
        manifest = _json_object(body, "manifest")
        if media_type in INDEX_TYPES or "manifests" in manifest:
            child = _select_platform(manifest, want)
            body, media_type, _ = await registry.get_manifest(ref.path, child)
            manifest = _json_object(body, "manifest")
        if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST) and "layers" not in manifest:
            raise InvalidParameter(
                f"unsupported manifest media type {media_type or 'unknown'} "
                "(schema 1 manifests are not supported, as in current dockerd)"
            )
        config_desc = manifest.get("config")
        if not isinstance(config_desc, dict):
            raise RegistryError("invalid manifest: no config")
        config_digest = normalize_digest(str(config_desc.get("digest", "")))
        config_bytes = await _fetch_small(registry, ref.path, config_digest)
        config = _json_object(config_bytes, "image config")
        try:
            diff_ids = [normalize_digest(d) for d in config["rootfs"]["diff_ids"]]
        except (KeyError, TypeError):
            raise RegistryError("invalid image config: no rootfs.diff_ids") from None
        layers = _layers(manifest, diff_ids)
        image_id = config_digest
        up_to_date = svc.has_image(image_id)
        imported: list[str] = []
        try:
            with svc.blobs.lease() as lease:
                if not up_to_date:
                    await _fetch_layers(svc, registry, ref, layers, progress, lease, imported)
                    image_id = svc.blobs.create_image_from_config(config_bytes)
                svc.name_pulled(image_id, ref, manifest_digest)
            # For a later push: what the registry holds these layers as, and where.
            # Only the downloaded ones were seen to be what the config says.
            svc.distribution.remember_forms(
                [
                    (x.diff_id, CompressedBlob(x.digest, x.media_type, x.size))
                    for x in layers
                    if x.chain_id in imported
                ]
            )
            svc.distribution.remember_sources(ref.domain, [x.digest for x in layers], ref.path)
        except OSError as e:
            # A full disk, an I/O error: the user's problem to see, in one line.
            svc.blobs.discard(imported, [], keep=svc.image_ids())
            where = f" {e.filename}" if e.filename else ""
            raise DockyardError(
                f"failed to register layer: write{where}: {(e.strerror or str(e)).lower()}"
            ) from None
        except BaseException:
            # After the lease: what this pull unpacked and nothing uses goes.
            svc.blobs.discard(imported, [], keep=svc.image_ids())
            raise
    progress.status(f"Digest: {manifest_digest}")
    name = str(ref) if ref.digest is None else f"{ref.familiar_name}@{ref.digest}"
    if up_to_date:
        progress.status(f"Status: Image is up to date for {name}")
    else:
        progress.status(f"Status: Downloaded newer image for {name}")
    return image_id


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise RegistryError(f"invalid {what}: not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"invalid {what}: not a JSON object")
    return doc


def _select_platform(index: dict[str, Any], want: Platform) -> str:
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise RegistryError("invalid manifest list: no manifests")
    fallback = None
    for desc in manifests:
        if not isinstance(desc, dict):
            continue
        plat = desc.get("platform") or {}
        if plat.get("os") != want.os or plat.get("architecture") != want.architecture:
            continue
        variant = plat.get("variant") or ""
        if want.variant and variant != want.variant:
            continue
        # arm64 images say v8 or nothing; prefer the exact match when asked for none.
        if not want.variant and variant and fallback is None:
            fallback = desc
            continue
        return normalize_digest(str(desc.get("digest", "")))
    if fallback is not None:
        return normalize_digest(str(fallback.get("digest", "")))
    raise NotFound(f"no matching manifest for {want} in the manifest list entries")


def _layers(manifest: dict[str, Any], diff_ids: list[str]) -> list[_Layer]:
    descs = manifest.get("layers")
    if not isinstance(descs, list):
        raise RegistryError("invalid manifest: no layers")
    if len(descs) != len(diff_ids):
        raise RegistryError(
            f"invalid image: the manifest lists {len(descs)} layers, the config {len(diff_ids)}"
        )
    out = []
    for desc, diff_id, chain in zip(descs, diff_ids, chain_ids(diff_ids), strict=True):
        if not isinstance(desc, dict):
            raise RegistryError("invalid manifest: bad layer descriptor")
        media_type = str(desc.get("mediaType", ""))
        if media_type in _FOREIGN_TYPES:
            raise InvalidParameter(
                f"foreign (non-distributable) layers are not supported: {media_type}"
            )
        if media_type and media_type not in _LAYER_TYPES:
            raise InvalidParameter(f"unsupported layer media type {media_type}")
        size = desc.get("size")
        out.append(
            _Layer(
                digest=normalize_digest(str(desc.get("digest", ""))),
                size=size if isinstance(size, int) and size >= 0 else 0,
                diff_id=diff_id,
                chain_id=chain,
                media_type=media_type or "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        )
    return out


async def _fetch_small(registry: Registry, path: str, digest: str) -> bytes:
    data = bytearray()

    def sink(chunk: bytes) -> None:
        data.extend(chunk)
        if len(data) > MAX_CONFIG:
            raise RegistryError(f"image config {digest} is larger than {MAX_CONFIG} bytes")

    await registry.fetch_blob(path, digest, sink, data.clear)
    return bytes(data)


async def _fetch_layers(
    svc: ImageService,
    registry: Registry,
    ref: Reference,
    layers: list[_Layer],
    progress: ProgressStream,
    lease: set[str],
    imported: list[str],
) -> None:
    blobs = svc.blobs
    needed: list[_Layer] = []
    for layer in layers:
        try:
            blobs.pin(layer.chain_id)
            progress.status("Already exists", short(layer.digest))
        except NotFound:
            needed.append(layer)
            progress.status("Pulling fs layer", short(layer.digest))
    if not needed:
        return
    limit = asyncio.Semaphore(MAX_CONCURRENT_DOWNLOADS)
    jobs = [
        asyncio.ensure_future(_download_and_unpack(blobs, registry, ref, layer, progress, limit))
        for layer in needed
    ]
    try:
        for layer, job in zip(needed, jobs, strict=True):  # committed bottom-most first
            unpacked = await job
            ident = short(layer.digest)
            if unpacked.diff_id != layer.diff_id:
                raise RegistryError(
                    f"failed to register layer: layer {ident} has diff_id "
                    f"{unpacked.diff_id}, the image config says {layer.diff_id}"
                )
            parent_index = layers.index(layer) - 1
            parent = layers[parent_index].chain_id if parent_index >= 0 else None

            def commit(unpacked: UnpackedLayer = unpacked, parent: str | None = parent) -> Layer:
                with blobs.lease(lease):
                    return blobs.commit(unpacked, parent)

            stored = await run_in_thread(commit, "image-pull-commit")
            imported.append(stored.chain_id)
            progress.status("Pull complete", ident)
    except BaseException:
        for job in jobs:
            job.cancel()
        for result in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(result, UnpackedLayer):
                result.discard()  # unpacked, never committed (a no-op for committed ones)
        raise


class _Restart(Exception):
    """The registry ignored a Range request: the layer starts over."""


class _UnpackStopped(Exception):
    """The unpacker failed with a local error (a full disk): stop downloading."""


async def _download_and_unpack(
    blobs: ImageStore,
    registry: Registry,
    ref: Reference,
    layer: _Layer,
    progress: ProgressStream,
    limit: asyncio.Semaphore,
) -> UnpackedLayer:
    """Download a layer blob and unpack it as it arrives, into temporaries.

    The blob's digest is checked in the same pass (by fetch_blob, as the
    bytes go by); a blob that does not match fails, and what was unpacked
    from it is discarded. If the unpacker fails on a bad archive, the rest
    of the blob is still hashed, so that a tampered blob is reported as
    such rather than as a corrupt archive.
    """
    ident = short(layer.digest)
    if limit.locked():
        progress.status("Waiting", ident)
    async with limit:
        for _ in range(_RESUME_RESTARTS + 1):
            feed = PipeFeed()
            downloaded = threading.Event()

            def extracting(count: int, downloaded: threading.Event = downloaded) -> None:
                if downloaded.is_set():  # while downloading, the download's progress shows
                    progress.progress("Extracting", ident, count, layer.size)

            def unpack(read_fd: int = feed.read_fd, on_read: Any = extracting) -> UnpackedLayer:
                with open(read_fd, "rb", buffering=_PIPE_READ) as stream:
                    return blobs.unpack(_layer_stream(stream, on_read))

            job = run_in_thread(unpack, "image-pull-unpack")

            async def sink(chunk: bytes, feed: PipeFeed = feed, job: Any = job) -> None:
                if job.done():
                    error = job.exception()
                    if error is not None and not isinstance(error, DockyardError):
                        raise _UnpackStopped
                    return  # a bad archive: only hash the rest (see above)
                try:
                    await feed.write(chunk)
                except BrokenPipeError:
                    pass  # the unpacker stopped; its error is the one to report

            def rewind() -> None:
                raise _Restart

            def report(received: int) -> None:
                done = received >= layer.size > 0
                progress.progress("Downloading", ident, received, layer.size, force=done)

            try:
                await registry.fetch_blob(
                    ref.path, layer.digest, sink, rewind, report, size=layer.size
                )
            except BaseException as e:
                feed.close()
                result = await _settle(job)
                if isinstance(e, _Restart):
                    continue
                if isinstance(e, _UnpackStopped) and isinstance(result, BaseException):
                    raise result from None
                raise
            feed.close()
            progress.status("Verifying Checksum", ident)
            progress.status("Download complete", ident)
            downloaded.set()
            try:
                unpacked = await asyncio.shield(job)
            except DockyardError as e:
                raise RegistryError(f"failed to register layer {ident}: {e.message}") from None
            except asyncio.CancelledError:
                await _settle(job)  # the pull failed elsewhere: undo this layer too
                raise
            progress.progress("Extracting", ident, layer.size, layer.size, force=True)
            return unpacked
        raise RegistryError(
            f"fetching blob {layer.digest} of {registry.domain}/{ref.path}: the connection "
            "kept dropping and the registry does not resume (no Range support)"
        )


async def _settle(job: asyncio.Future[UnpackedLayer]) -> object:
    """Wait for an unpacking thread no longer wanted; discard what it made.

    Shielded: a second cancellation must not cancel `job` itself, whose result
    (temporaries on disk) would then be lost to the clean-up. The thread ends
    soon anyway, its input being closed."""
    while not job.done():
        with contextlib.suppress(BaseException):
            await asyncio.shield(job)
    result: object = job.exception() or job.result()
    if isinstance(result, UnpackedLayer):
        result.discard()
    return result


class _CountingReader:
    """The compressed blob as the unpacker reads it, counted for progress."""

    def __init__(self, source: BinaryIO, on_read: Callable[[int], None]) -> None:
        self._source = source
        self._on_read = on_read
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.count += len(data)
        self._on_read(self.count)
        return data

    def readinto(self, buffer: Any) -> int:  # what igzip's reader calls
        n = self._source.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n
        self._on_read(self.count)
        return n

    def peek(self, size: int = 0) -> bytes:
        return self._source.peek(size)  # type: ignore[attr-defined]


class _Gunzip:
    """ISA-L's gzip reader (several times zlib's speed), its errors made
    the unpacker's "invalid layer archive"."""

    def __init__(self, source: Any) -> None:
        self._file = igzip.GzipFile(fileobj=source, mode="rb")

    def read(self, size: int = -1) -> bytes:
        try:
            return self._file.read(size)
        except (isal_zlib.error, EOFError, OSError, ValueError) as e:
            if isinstance(e, OSError) and not isinstance(e, igzip.BadGzipFile):
                raise
            raise InvalidParameter(f"invalid layer archive: gzip: {e}") from None


def _layer_stream(stream: BinaryIO, on_read: Callable[[int], None]) -> Readable:
    """The layer's tar for the unpacker: gzip is decompressed here (faster than the
    unpacker's own zlib), any other form is handed over as it is."""
    counted = _CountingReader(stream, on_read)
    if stream.peek(2)[:2] == b"\x1f\x8b":  # type: ignore[attr-defined]
        return _Gunzip(counted)
    return counted
