"""`docker push`: a local image to a Distribution v2 registry.

Layers go as gzip blobs in an OCI manifest, as every registry and client
expects. Compressing is the slow part of a push, so a layer is compressed
only when the registry has none of its known compressed forms: the ones it
was pulled as or pushed as before (distribution_metadata.py) are first
asked for with HEAD in the target repository, then mounted from another
repository of the registry known to hold them; only then is the layer
compressed, streamed to the registry as it is compressed (one pass: read,
gzip, hash, send), and its new form remembered. Uploads run five at a
time, as dockerd's; a layer whose upload broke goes on where the registry
stands (see _upload_layer), or starts over where it cannot tell.

The gzip made for a push is not kept: the same layer pushed to another
registry is compressed again, to the same bytes and digests (ISA-L level 1
is deterministic), so the manifest is the same on both. Keeping it would
cost about half the layer's size on disk for every pushed layer, to save
the compression's CPU (~0.3 s per 120 MB in one thread, bench/registry_bench.py
`push2`), which on any real network runs while the bytes are sent anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from dockyard.engine.distribution_metadata import CompressedBlob
from dockyard.engine.progress import ProgressStream, short
from dockyard.errors import InvalidParameter
from dockyard.image.layer_gzip import LayerGzip
from dockyard.image.reference import Reference
from dockyard.image.registry import OCI_MANIFEST, Registry, RegistryError, new_session
from dockyard.image.registry_auth import AuthConfig
from dockyard.image.registry_upload import (
    BlobUpload,
    BlobUploads,
    SegmentRefused,
    UploadInterrupted,
)

if TYPE_CHECKING:
    from dockyard.engine.images import ImageService

MAX_CONCURRENT_UPLOADS = 5
UPLOAD_ATTEMPTS = 3  # breaks in a row, without the registry taking more bytes, before giving up
SEGMENT = 32 << 20  # gzip bytes per PATCH after a break: what another break costs at most
RETRY_DELAY = 2  # seconds, doubled after each failed attempt
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def oci_layer_type(media_type: str) -> str:
    """The OCI media type of a layer blob known by its docker or OCI type."""
    if media_type.endswith(("gzip", "+gzip")):
        return OCI_LAYER_GZIP
    if media_type.endswith("zstd"):
        return OCI_LAYER + "+zstd"
    return OCI_LAYER


async def push(
    svc: ImageService,
    refs: list[Reference],
    auth: AuthConfig,
    progress: ProgressStream,
) -> None:
    """Push each of `refs` (tags of one repository, already resolved locally)."""
    repo = refs[0]
    progress.status(f"The push refers to repository [{repo.name}]")
    async with new_session() as session:
        registry = Registry(session, repo.domain, auth, svc.insecure)
        for ref in refs:
            await _push_one(svc, registry, ref, progress)


async def _push_one(
    svc: ImageService, registry: Registry, ref: Reference, progress: ProgressStream
) -> None:
    image_id = svc.resolve(str(ref))
    blobs = svc.blobs
    with blobs.lease():
        layers = [blobs.pin(chain) for chain in svc.chain_ids_of(image_id)]
        config_bytes = blobs.get_blob(image_id)
        # A layer that occurs twice (the same diff_id) is pushed once.
        diff_ids = list(dict.fromkeys(layer.diff_id for layer in layers))
        for diff_id in reversed(diff_ids):  # docker lists the top-most first
            progress.status("Preparing", short(diff_id))
        limit = asyncio.Semaphore(MAX_CONCURRENT_UPLOADS)
        tasks = [
            asyncio.ensure_future(_push_layer(svc, registry, ref, diff_id, progress, limit))
            for diff_id in diff_ids
        ]
        try:
            done = dict(zip(diff_ids, await asyncio.gather(*tasks), strict=True))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        pushed = [done[layer.diff_id] for layer in layers]
        config_digest = image_id
        if not await registry.blob_exists(ref.path, config_digest):
            await BlobUploads(registry, ref.path).upload(config_digest, config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [
                {"mediaType": oci_layer_type(b.media_type), "digest": b.digest, "size": b.size}
                for b in pushed
            ],
        }
        body = json.dumps(manifest, separators=(",", ":")).encode()
        tag = ref.tag or "latest"
        digest = await registry.put_manifest(ref.path, tag, body, OCI_MANIFEST)
    svc.record_repo_digest(image_id, ref, digest)
    svc.distribution.remember_sources(ref.domain, [b.digest for b in pushed], ref.path)
    progress.status(f"{tag}: digest: {digest} size: {len(body)}")
    progress.emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(body)}})


async def _push_layer(
    svc: ImageService,
    registry: Registry,
    ref: Reference,
    diff_id: str,
    progress: ProgressStream,
    limit: asyncio.Semaphore,
) -> CompressedBlob:
    ident = short(diff_id)
    if limit.locked():
        progress.status("Waiting", ident)
    async with limit:
        forms = svc.distribution.compressed_forms(diff_id)
        for blob in forms:
            if await registry.blob_exists(ref.path, blob.digest):
                progress.status("Layer already exists", ident)
                return blob
        for blob in forms:
            for source in svc.distribution.blob_sources(ref.domain, blob.digest):
                if source != ref.path and await registry.mount_blob(ref.path, blob.digest, source):
                    progress.status(f"Mounted from {source}", ident)
                    return blob
        uploads = BlobUploads(registry, ref.path)
        # In a thread: a committed layer's tar is first rebuilt from its directory.
        path = await asyncio.to_thread(svc.blobs.blob_path, diff_id)
        blob = await _upload_layer(uploads, path, ident, progress)
        svc.distribution.remember_forms([(diff_id, blob)])
        progress.status("Pushed", ident)
        return blob


async def _upload_layer(
    uploads: BlobUploads, path: str, ident: str, progress: ProgressStream
) -> CompressedBlob:
    """Upload the layer tar at `path` as gzip, resuming where the registry stands
    after a break.

    A break (a dropped connection, a 5xx answer, a 401 for a token that
    expired) is followed by a GET on the upload: the registry says how many
    bytes it holds, and the upload goes on from there; a registry that cannot
    tell (404, no Range) gets the layer from byte 0 in a new upload.

    The bytes already sent are not kept: the layer is compressed again and the
    first N bytes skipped, as ISA-L gives the same bytes for the same input
    (layer_gzip.py). That costs CPU on a break only (ISA-L goes through ~380 MB
    of layer tar a second per core), where keeping them would write every
    pushed layer's gzip to disk. Should the bytes ever differ, the registry
    refuses the digest at the closing PUT and the layer starts over.

    The first try sends the layer in one PATCH, as dockerd does, which every
    registry takes. After a break, the layer goes in segments of `SEGMENT` bytes
    (one PATCH each), so that a connection that broke once costs at most a
    segment if it breaks again, where the registry can resume from the last
    PATCH it answered: behind a proxy that drops a broken PATCH whole (nginx's
    default request buffering), or where the registry says what it truly
    holds. docker/distribution alone keeps the part of a PATCH cut midway and
    then refuses the upload (404): there the layer starts over. A registry
    that refuses a second PATCH gets the layer again in one.
    """
    upload: BlobUpload | None = None
    segment: int | None = None  # gzip bytes per PATCH; None: all in one
    failures = 0
    resumed_at: int | None = None  # where this upload went on after its last break
    while True:
        try:
            if upload is None:
                upload = await uploads.start()
            blob = await _send_gzip(uploads, upload, path, segment, ident, progress)
            await uploads.finish(upload, blob.digest)
            return blob
        except (RegistryError, InvalidParameter) as e:
            if isinstance(e, InvalidParameter) and resumed_at is None:
                raise  # refused for a reason that another try does not change
            if upload is not None and resumed_at is not None and upload.offset > resumed_at:
                failures = 0  # the registry took more since the last break: keep going
            failures += 1
            if failures >= UPLOAD_ATTEMPTS:
                if upload is not None:
                    await uploads.cancel(upload)
                raise
            delay = RETRY_DELAY * failures
            progress.status(f"Retrying in {delay} seconds", ident)
            await asyncio.sleep(delay)
            segment = None if isinstance(e, SegmentRefused) else SEGMENT
            held = None
            if upload is not None and isinstance(e, UploadInterrupted):
                with contextlib.suppress(RegistryError):
                    held = await uploads.status(upload)
            if upload is not None and held is not None:
                upload.offset = resumed_at = held
            else:  # the registry cannot tell: the layer from byte 0, in a new upload
                if upload is not None:
                    await uploads.cancel(upload)
                upload, resumed_at = None, None


async def _send_gzip(
    uploads: BlobUploads,
    upload: BlobUpload,
    path: str,
    segment: int | None,
    ident: str,
    progress: ProgressStream,
) -> CompressedBlob:
    """Compress the layer tar at `path` and send what follows `upload.offset` of
    its gzip as it is compressed, in PATCHes of about `segment` bytes (one if None)."""
    total = os.path.getsize(path)
    with open(path, "rb") as source:
        gz = LayerGzip(source)
        pieces = _GzipPieces(
            gz,
            upload.offset,
            lambda: progress.progress("Pushing", ident, gz.read, total, force=gz.done),
        )
        try:
            while (first := await pieces.next()) is not None:
                await uploads.send(upload, _segment(first, pieces, segment))
        finally:
            await pieces.close()
    if gz.size < upload.offset:
        raise RegistryError(
            f"the registry holds {upload.offset} bytes of a {gz.size} bytes layer upload"
        )
    return CompressedBlob(gz.digest, OCI_LAYER_GZIP, gz.size)


async def _segment(first: bytes, pieces: _GzipPieces, limit: int | None) -> AsyncIterator[bytes]:
    """The body of one PATCH: `first`, then pieces until `limit` bytes are out."""
    sent = len(first)
    yield first
    while (limit is None or sent < limit) and (piece := await pieces.next()) is not None:
        sent += len(piece)
        yield piece


class _GzipPieces:
    """The gzip of a layer piece by piece, the first `skip` bytes left out. One
    piece compresses in a worker thread while the previous one is sent."""

    def __init__(self, gz: LayerGzip, skip: int, on_step: Callable[[], None]) -> None:
        self._gz = gz
        self._skip = skip
        self._on_step = on_step
        self._pending: asyncio.Future[bytes] | None = None
        self._closed = False

    async def next(self) -> bytes | None:
        while True:
            if self._closed or (self._gz.done and self._pending is None):
                return None
            if self._pending is None:
                self._pending = asyncio.ensure_future(asyncio.to_thread(self._gz.step))
            out = await self._pending
            self._pending = None
            if not self._gz.done and not self._closed:
                self._pending = asyncio.ensure_future(asyncio.to_thread(self._gz.step))
            self._on_step()
            if self._skip:
                cut = min(self._skip, len(out))
                out, self._skip = out[cut:], self._skip - cut
            if out:
                return out

    async def close(self) -> None:
        """Let the worker finish its piece before the file closes under it."""
        self._closed = True
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
            self._pending = None
