"""`docker push`: a local image to a Distribution v2 registry.

Layers are pushed as the store keeps them, uncompressed, in an OCI
manifest (application/vnd.oci.image.layer.v1.tar): their blob digest is
their diff_id, so whether the registry has one is known without reading
it, and a re-push reads nothing. A layer the registry already holds in
another repository that this daemon pulled from or pushed to is mounted
across repositories instead of uploaded. Uploads run five at a time, as
dockerd's.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from dockyard.engine.progress import ProgressStream, short
from dockyard.image.reference import Reference
from dockyard.image.registry import OCI_MANIFEST, Registry, new_session
from dockyard.image.registry_auth import AuthConfig

if TYPE_CHECKING:
    from dockyard.engine.images import ImageService

MAX_CONCURRENT_UPLOADS = 5
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


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
        for layer in reversed(layers):  # docker lists the top-most first
            progress.status("Preparing", short(layer.diff_id))
        limit = asyncio.Semaphore(MAX_CONCURRENT_UPLOADS)
        sizes = await asyncio.gather(
            *(_push_layer(svc, registry, ref, layer.diff_id, progress, limit) for layer in layers)
        )
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
                {"mediaType": OCI_LAYER, "digest": layer.diff_id, "size": size}
                for layer, size in zip(layers, sizes, strict=True)
            ],
        }
        body = json.dumps(manifest, separators=(",", ":")).encode()
        tag = ref.tag or "latest"
        digest = await registry.put_manifest(ref.path, tag, body, OCI_MANIFEST)
    svc.record_repo_digest(image_id, ref, digest)
    svc.remember_blob_sources(ref.domain, [layer.diff_id for layer in layers], ref.path)
    progress.status(f"{tag}: digest: {digest} size: {len(body)}")
    progress.emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(body)}})


async def _push_layer(
    svc: ImageService,
    registry: Registry,
    ref: Reference,
    diff_id: str,
    progress: ProgressStream,
    limit: asyncio.Semaphore,
) -> int:
    ident = short(diff_id)
    path = svc.blobs.blob_path(diff_id)
    size = os.path.getsize(path)
    async with limit:
        if await registry.blob_exists(ref.path, diff_id):
            progress.status("Layer already exists", ident)
            return size
        for source in svc.blob_sources(ref.domain, diff_id):
            if source != ref.path and await registry.mount_blob(ref.path, diff_id, source):
                progress.status(f"Mounted from {source}", ident)
                return size

        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            with open(path, "rb") as f:
                while data := await asyncio.to_thread(f.read, 1 << 20):
                    sent += len(data)
                    progress.progress("Pushing", ident, sent, size)
                    yield data

        await registry.upload_blob(ref.path, diff_id, size, chunks)
        progress.status("Pushed", ident)
        return size


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
