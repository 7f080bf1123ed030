"""`docker pull`: an image from a Distribution v2 registry into the store.

Layers download in parallel (three at a time, as dockerd) into temporary
files, each checked against its digest; they are unpacked in order as soon
as each one and its parent are there, and each unpacked layer is checked
against the diff_id of the image config. Nothing is named until the whole
image is in the store; a failure removes what the pull added.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

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
from dockyard.image.store import ImageStore, Layer, go_architecture

if TYPE_CHECKING:
    from dockyard.engine.images import ImageService

MAX_CONCURRENT_DOWNLOADS = 3
MAX_CONFIG = 8 << 20
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
    path: str = ""  # the downloaded blob


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
    os.makedirs(svc.tmp_dir, exist_ok=True)
    limit = asyncio.Semaphore(MAX_CONCURRENT_DOWNLOADS)
    downloads = {
        layer.chain_id: asyncio.ensure_future(
            _download(registry, ref, layer, svc.tmp_dir, progress, limit)
        )
        for layer in needed
    }
    try:
        for layer in needed:  # bottom-most first: each needs its parent unpacked
            await downloads[layer.chain_id]
            parent_index = layers.index(layer) - 1
            parent = layers[parent_index].chain_id if parent_index >= 0 else None
            stored = await run_in_thread(
                lambda layer=layer, parent=parent: _unpack(blobs, layer, parent, progress, lease),
                "image-pull-unpack",
            )
            imported.append(stored.chain_id)  # before the check: a wrong layer is undone too
            if stored.diff_id != layer.diff_id:
                raise RegistryError(
                    f"failed to register layer: layer {short(layer.digest)} has diff_id "
                    f"{stored.diff_id}, the image config says {layer.diff_id}"
                )
            progress.status("Pull complete", short(layer.digest))
    except BaseException:
        for task in downloads.values():
            task.cancel()
        await asyncio.gather(*downloads.values(), return_exceptions=True)
        raise
    finally:
        for layer in needed:
            if layer.path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(layer.path)


async def _download(
    registry: Registry,
    ref: Reference,
    layer: _Layer,
    tmp_dir: str,
    progress: ProgressStream,
    limit: asyncio.Semaphore,
) -> None:
    ident = short(layer.digest)
    async with limit:
        fd, layer.path = tempfile.mkstemp(prefix="pull-", dir=tmp_dir)
        with os.fdopen(fd, "wb") as out:

            def rewind() -> None:
                out.seek(0)
                out.truncate()

            def report(received: int) -> None:
                done = received >= layer.size > 0
                progress.progress("Downloading", ident, received, layer.size, force=done)

            await registry.fetch_blob(ref.path, layer.digest, out.write, rewind, report)
        progress.status("Verifying Checksum", ident)
        progress.status("Download complete", ident)


class _CountingReader:
    def __init__(self, source: BinaryIO, on_read: Any) -> None:
        self._source = source
        self._on_read = on_read
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.count += len(data)
        self._on_read(self.count)
        return data


def _unpack(
    blobs: ImageStore, layer: _Layer, parent: str | None, progress: ProgressStream, lease: set[str]
) -> Layer:
    ident = short(layer.digest)
    total = os.path.getsize(layer.path)
    with blobs.lease(lease), open(layer.path, "rb") as f:
        reader = _CountingReader(f, lambda n: progress.progress("Extracting", ident, n, total))
        try:
            stored = blobs.import_layer(reader, parent)
        except DockyardError as e:
            raise RegistryError(f"failed to register layer {ident}: {e.message}") from None
    progress.progress("Extracting", ident, total, total, force=True)
    return stored
