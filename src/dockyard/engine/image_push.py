"""`docker push`: a local image to a Distribution v2 registry.

Layers go as gzip blobs in an OCI manifest, as every registry and client
expects. Compressing is the slow part of a push, so a layer is compressed
only when the registry has none of its known compressed forms: the ones it
was pulled as or pushed as before (distribution_metadata.py) are first
asked for with HEAD in the target repository, then mounted from another
repository of the registry known to hold them; only then is the layer
compressed, streamed to the registry as it is compressed (one pass: read,
gzip, hash, send), and its new form remembered. Uploads run five at a
time, as dockerd's; a layer whose upload broke is retried twice.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from dockyard.engine.distribution_metadata import CompressedBlob
from dockyard.engine.progress import ProgressStream, short
from dockyard.image.layer_gzip import LayerGzip
from dockyard.image.reference import Reference
from dockyard.image.registry import OCI_MANIFEST, Registry, RegistryError, new_session
from dockyard.image.registry_auth import AuthConfig

if TYPE_CHECKING:
    from dockyard.engine.images import ImageService

MAX_CONCURRENT_UPLOADS = 5
UPLOAD_ATTEMPTS = 3
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
            await registry.upload_blob(
                ref.path, config_digest, len(config_bytes), lambda: _once(config_bytes)
            )
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
        path = svc.blobs.blob_path(diff_id)
        for attempt in range(UPLOAD_ATTEMPTS):
            try:
                blob = await _upload_gzip(registry, ref.path, path, ident, progress)
                break
            except RegistryError:
                if attempt == UPLOAD_ATTEMPTS - 1:
                    raise
                delay = RETRY_DELAY * (attempt + 1)
                progress.status(f"Retrying in {delay} seconds", ident)
                await asyncio.sleep(delay)
        svc.distribution.remember_forms([(diff_id, blob)])
        progress.status("Pushed", ident)
        return blob


async def _upload_gzip(
    registry: Registry, repo_path: str, path: str, ident: str, progress: ProgressStream
) -> CompressedBlob:
    """Compress the layer tar at `path` while streaming it to the registry."""
    total = os.path.getsize(path)
    with open(path, "rb") as source:
        gz = LayerGzip(source)

        async def chunks() -> AsyncIterator[bytes]:
            # One chunk compresses in a worker thread while the previous one is sent.
            pending = asyncio.ensure_future(asyncio.to_thread(gz.step))
            try:
                while True:
                    out = await pending
                    done = gz.done
                    if not done:
                        pending = asyncio.ensure_future(asyncio.to_thread(gz.step))
                    progress.progress("Pushing", ident, gz.read, total, force=done)
                    if out:
                        yield out
                    if done:
                        return
            finally:
                # The upload broke off: let the worker finish its chunk before the
                # file closes under it.
                await asyncio.gather(pending, return_exceptions=True)

        await registry.upload_blob_stream(repo_path, chunks(), lambda: gz.digest)
    return CompressedBlob(gz.digest, OCI_LAYER_GZIP, gz.size)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
