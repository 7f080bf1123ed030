"""`docker save` / `docker load` archives.

Saved archives use the layout dockerd 25+ writes, which every docker
(old and new) and OCI tools can load: an OCI image layout (oci-layout,
index.json, blobs/sha256/...) plus Docker's manifest.json and repositories.
Layers are stored uncompressed, so their blob digest is their diff_id.

Loading accepts that layout, the pre-25 layout (<id>/layer.tar, <id>.json,
symlinks between duplicate layers) and a bare OCI layout (index.json only),
gzip/bzip2/xz-compressed or not. The archive is unpacked with the same
hostile-tar rules as layers into a private directory under the store, and
every file named by a manifest is opened inside it (symlinks resolved in
that directory, never on the host).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from dockyard.errors import InvalidParameter, NotFound
from dockyard.image.atomic import temp_name
from dockyard.image.digest import chain_ids, digest_hex, sha256_digest
from dockyard.image.digesting import is_compressed
from dockyard.image.layered_read import open_file
from dockyard.image.reference import parse_reference
from dockyard.image.store import ImageStore, UnpackedLayer, go_architecture
from dockyard.image.streamed_layers import StreamedLayers
from dockyard.image.tarsafe import Readable, unpack_layer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MAX_METADATA = 32 << 20  # manifest.json, index.json, configs: far larger is an attack
_MTIME = 0  # entries of a saved archive carry no meaningful time; keep output reproducible


@dataclass
class SavedImage:
    image_id: str
    repo_tags: list[str]  # familiar "name:tag" forms, may be empty


@dataclass
class LoadedImage:
    image_id: str
    repo_tags: list[str]  # normalised familiar "name:tag" forms from the archive


@dataclass
class LoadJournal:
    """What a load added to the store, so that a failed load can be undone
    (ImageStore.discard) and no half image stays behind."""

    chains: list[str] = field(default_factory=list)  # layers unpacked by this load
    configs: list[str] = field(default_factory=list)  # image configs it wrote


# Files whose name is their digest: their content is checked against it.
_DIGEST_NAMED = re.compile(r"(?:blobs/sha256/([0-9a-f]{64})|([0-9a-f]{64})\.json)")


# -- save -------------------------------------------------------------------------


def save_images(store: ImageStore, images: list[SavedImage], out: BinaryIO) -> None:
    """Write `images` (with the tags to record for each) as one tar to `out`."""
    written: set[str] = set()
    manifest_json: list[dict] = []
    index_manifests: list[dict] = []
    repositories: dict[str, dict[str, str]] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")

        def add_blob_bytes(data: bytes) -> str:
            digest = sha256_digest(data)
            if digest not in written:
                _add_bytes(tar, "blobs/sha256/" + digest_hex(digest), data)
                written.add(digest)
            return digest

        for image in images:
            config_bytes = store.get_blob(image.image_id)
            config = store.image_config(image.image_id)
            diff_ids = list(config["rootfs"].get("diff_ids") or [])
            layer_descs = []
            for diff_id in diff_ids:
                path = store.blob_path(diff_id)
                size = os.stat(path).st_size
                if diff_id not in written:
                    info = tarfile.TarInfo("blobs/sha256/" + digest_hex(diff_id))
                    info.size, info.mode, info.mtime = size, 0o444, _MTIME
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                    written.add(diff_id)
                layer_descs.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": size})
            config_digest = add_blob_bytes(config_bytes)
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": config_digest,
                    "size": len(config_bytes),
                },
                "layers": layer_descs,
            }
            manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
            manifest_digest = add_blob_bytes(manifest_bytes)
            tags = [str(parse_reference(t)) for t in image.repo_tags]
            descriptor = {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest_bytes),
            }
            if not tags:
                index_manifests.append(descriptor)
            for tag in tags:
                ref = parse_reference(tag)
                annotations = {
                    "io.containerd.image.name": f"{ref.name}:{ref.tag}",
                    "org.opencontainers.image.ref.name": ref.tag or "latest",
                }
                index_manifests.append({**descriptor, "annotations": annotations})
                if diff_ids:
                    repositories.setdefault(ref.familiar_name, {})[ref.tag or "latest"] = (
                        digest_hex(diff_ids[-1])
                    )
            manifest_json.append(
                {
                    "Config": "blobs/sha256/" + digest_hex(config_digest),
                    "RepoTags": tags or None,
                    "Layers": ["blobs/sha256/" + digest_hex(d) for d in diff_ids],
                }
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_manifests}
        _add_bytes(tar, "index.json", json.dumps(index, separators=(",", ":")).encode())
        _add_bytes(tar, "manifest.json", json.dumps(manifest_json, separators=(",", ":")).encode())
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        if repositories:
            _add_bytes(
                tar, "repositories", json.dumps(repositories, separators=(",", ":")).encode()
            )


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _MTIME
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o444, _MTIME
    tar.addfile(info, io.BytesIO(data))


# -- load -------------------------------------------------------------------------


def load_images(
    store: ImageStore,
    stream: BinaryIO | Readable,
    journal: LoadJournal | None = None,
    progress: LayerProgress | None = None,
) -> list[LoadedImage]:
    """Import every image of a `docker save` archive; return them in archive order.

    Everything is checked before anything is named: the caller registers the
    returned images (inside its own lease) only if the whole archive loaded.
    Device nodes are refused, in the archive and in its layers: a loaded
    archive is untrusted input. `progress(diff_id, bytes read, size)` is
    called as each layer is read. `journal` records what was added, for the
    caller to discard if the load fails.
    """
    journal = journal if journal is not None else LoadJournal()
    work = temp_name(store.layers_dir, "-load")
    # Layers are unpacked as they arrive (image/streamed_layers), not spooled.
    streamed = StreamedLayers(store, progress)
    try:
        os.mkdir(work, 0o700)
        streamed.start(work)
        unpack_layer(stream, work, allow_devices=False, divert=streamed)
        archive = _Archive(work, streamed)
        entries = archive.entries()
        loaded = []
        with store.lease():
            for config_path, layer_paths, tags in entries:
                loaded.append(
                    _load_one(store, archive, config_path, layer_paths, tags, journal, progress)
                )
        return loaded
    finally:
        streamed.discard()
        shutil.rmtree(work, ignore_errors=True)


class _Archive:
    """Files of an unpacked archive, always opened safely inside it."""

    def __init__(self, root: str, streamed: StreamedLayers | None = None) -> None:
        self.root = root
        self.streamed = streamed

    def read(self, path: str) -> bytes:
        """A metadata file (manifest, index, config), bounded: it is read whole."""
        with self.open(path) as f:
            if os.fstat(f.fileno()).st_size > MAX_METADATA:
                raise InvalidParameter(
                    f"invalid archive: {path} is larger than {MAX_METADATA >> 20} MiB"
                )
            data = f.read()
        expected = _expected_digest(path)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise InvalidParameter(f"invalid archive: {path} does not match its digest")
        return data

    def json(self, path: str) -> object:
        try:
            return json.loads(self.read(path))
        except ValueError as e:
            raise InvalidParameter(f"invalid archive: {path}: {e}") from None

    def open(self, path: str) -> BinaryIO:
        fd = open_file([self.root], path)
        if fd is None:
            raise InvalidParameter(f"invalid archive: {path} not found in the archive")
        return open(fd, "rb")

    def has(self, path: str) -> bool:
        fd = open_file([self.root], path)
        if fd is None:
            return False
        os.close(fd)
        return True

    def entries(self) -> list[tuple[str, list[str], list[str]]]:
        """(config path, layer paths, tags) per image."""
        if self.has("manifest.json"):
            manifest = self.json("manifest.json")
            if not isinstance(manifest, list):
                raise InvalidParameter("invalid archive: manifest.json is not a list")
            out = []
            for item in manifest:
                if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
                    raise InvalidParameter("invalid archive: bad entry in manifest.json")
                layers = item.get("Layers") or []
                tags = item.get("RepoTags") or []
                if not all(isinstance(x, str) for x in [*layers, *tags]):
                    raise InvalidParameter("invalid archive: bad entry in manifest.json")
                out.append((item["Config"], list(layers), list(tags)))
            return out
        if self.has("index.json"):
            return self._oci_entries()
        raise InvalidParameter(
            "invalid archive: neither manifest.json nor index.json found (not a docker save archive?)"
        )

    def _oci_entries(self) -> list[tuple[str, list[str], list[str]]]:
        index = self.json("index.json")
        out = []
        for desc in _descriptors(index):
            tags = []
            name = (desc.get("annotations") or {}).get("io.containerd.image.name")
            if isinstance(name, str):
                tags.append(name)
            manifest = self._pick_manifest(desc)
            config = manifest.get("config") or {}
            layers = [_blob_path(layer.get("digest", "")) for layer in manifest.get("layers") or []]
            out.append((_blob_path(config.get("digest", "")), layers, tags))
        return out

    def _pick_manifest(self, desc: dict, depth: int = 0) -> dict:
        doc = self.json(_blob_path(desc.get("digest", "")))
        if not isinstance(doc, dict):
            raise InvalidParameter("invalid archive: manifest is not an object")
        if doc.get("mediaType") in (OCI_INDEX, DOCKER_MANIFEST_LIST) or "manifests" in doc:
            if depth > 4:
                raise InvalidParameter("invalid archive: index nested too deeply")
            candidates = _descriptors(doc)
            for child in candidates:
                platform = child.get("platform") or {}
                if platform.get("os", "linux") == "linux" and platform.get("architecture") in (
                    None,
                    go_architecture(),
                ):
                    return self._pick_manifest(child, depth + 1)
            raise NotFound(f"no image for linux/{go_architecture()} in the archive")
        return doc


def _descriptors(index: object) -> list[dict]:
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not all(isinstance(m, dict) for m in manifests):
        raise InvalidParameter("invalid archive: bad index")
    return manifests


def _blob_path(digest: object) -> str:
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise InvalidParameter(f"invalid archive: unsupported digest {digest!r}")
    return "blobs/sha256/" + digest_hex(digest)


def _expected_digest(path: str) -> str | None:
    match = _DIGEST_NAMED.fullmatch(os.path.normpath(path).lstrip("/"))
    return (match.group(1) or match.group(2)) if match else None


LayerProgress = Callable[[str, int, int], None]
_MAX_PARALLEL_LAYERS = 4


class _ProgressReader:
    def __init__(self, source: BinaryIO, chain: str, size: int, progress: LayerProgress) -> None:
        self._source = source
        self._chain = chain
        self._size = size
        self._progress = progress
        self._count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._count += len(data)
        self._progress(self._chain, self._count, self._size)
        return data


class _HashingReader:
    """Hashes the raw (possibly compressed) bytes of a blob as it is read."""

    def __init__(self, source: BinaryIO | Readable) -> None:
        self._source = source
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.sha.update(data)
        return data

    def drain(self) -> None:
        while data := self._source.read(1 << 20):
            self.sha.update(data)


def _load_one(
    store: ImageStore,
    archive: _Archive,
    config_path: str,
    layer_paths: list[str],
    tags: list[str],
    journal: LoadJournal,
    progress: LayerProgress | None = None,
) -> LoadedImage:
    config_bytes = archive.read(config_path)
    try:
        config = json.loads(config_bytes)
        diff_ids = list(config["rootfs"]["diff_ids"])
    except (ValueError, KeyError, TypeError):
        raise InvalidParameter(f"invalid archive: {config_path} is not an image config") from None
    if len(diff_ids) != len(layer_paths):
        raise InvalidParameter(
            f"invalid archive: {config_path} lists {len(diff_ids)} layers, the manifest {len(layer_paths)}"
        )
    try:
        refs = [str(parse_reference(t)) for t in tags]
    except InvalidParameter as e:
        raise InvalidParameter(f"invalid archive: bad tag in {config_path}: {e}") from None
    chains = chain_ids(diff_ids)
    missing = [
        (diff_id, chain, path)
        for diff_id, chain, path in zip(diff_ids, chains, layer_paths, strict=True)
        if not _pin_if_present(store, chain)
    ]
    # Unpacking needs no parent: the missing layers are unpacked side by side
    # (hashing, decompression and writes release the GIL), then named in order.
    unpacked: dict[str, UnpackedLayer] = {}
    try:
        spooled = []
        for diff_id, chain, path in missing:
            one = _take_streamed(store, archive, diff_id, path)
            if one is not None:
                unpacked[chain] = one
            else:
                spooled.append((diff_id, chain, path))
        missing = spooled
        workers = min(len(missing), os.cpu_count() or 2, _MAX_PARALLEL_LAYERS)
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="layer-unpack") as pool:
                futures = {
                    chain: pool.submit(_unpack_one, store, archive, diff_id, chain, path, progress)
                    for diff_id, chain, path in missing
                }
                errors = []
                for chain, future in futures.items():
                    try:
                        unpacked[chain] = future.result()
                    except BaseException as e:  # every worker done before we go on
                        errors.append(e)
                if errors:
                    raise errors[0]
        else:
            for diff_id, chain, path in missing:
                unpacked[chain] = _unpack_one(store, archive, diff_id, chain, path, progress)
        store.make_durable(unpacked.values())  # one syncfs for all of them
        parent: str | None = None
        for chain in chains:
            one = unpacked.pop(chain, None)
            if one is not None:
                layer = store.commit(one, parent)
                if layer.chain_id not in journal.chains:
                    journal.chains.append(layer.chain_id)
            parent = chain
    finally:
        for one in unpacked.values():
            one.discard()
    existed = store.has_blob(sha256_digest(config_bytes))
    image_id = store.create_image_from_config(config_bytes)
    if not existed:
        journal.configs.append(image_id)
    return LoadedImage(image_id, refs)


def _take_streamed(
    store: ImageStore, archive: _Archive, diff_id: str, path: str
) -> UnpackedLayer | None:
    """The layer at `path` if it was unpacked as it arrived, checked against its
    config and its name; None if it was spooled (then read from the file)."""
    if archive.streamed is None:
        return None
    with archive.open(path) as f:
        streamed = archive.streamed.find(f.fileno())
    if streamed is None:
        return None
    if streamed.error is not None:
        raise streamed.error
    if streamed.unpacked is None:
        # The same layer file again (an image with two equal layers): from its blob.
        with open(streamed.tar_path(store), "rb") as f:
            one = store.unpack(f, allow_devices=False)
    else:
        one = streamed.take()
    try:
        if one.diff_id != diff_id:
            raise InvalidParameter(
                f"invalid archive: layer {path} has diff_id {one.diff_id}, the config says {diff_id}"
            )
        expected = _expected_digest(path)
        if expected is not None and streamed.raw_sha256 != expected:
            raise InvalidParameter(f"invalid archive: {path} does not match its digest")
    except BaseException:
        one.discard()
        raise
    return one


def _unpack_one(
    store: ImageStore,
    archive: _Archive,
    diff_id: str,
    chain: str,
    path: str,
    progress: LayerProgress | None,
) -> UnpackedLayer:
    """Unpack one layer file of the archive, checked against its config and its name."""
    expected = _expected_digest(path)
    with archive.open(path) as f:
        source: BinaryIO | Readable = f
        if progress is not None:
            # Reported under the layer's diff_id, as dockerd does.
            source = _ProgressReader(f, diff_id, os.fstat(f.fileno()).st_size, progress)
        # Only a blob named by its digest needs a second hash (of its raw
        # bytes), and only if compressed: a plain tar's digest is its diff_id.
        plain = expected is not None and not is_compressed(f.fileno())
        raw = _HashingReader(source) if expected is not None and not plain else None
        one = store.unpack(raw or source, allow_devices=False, source_file=f)
        try:
            if raw is not None:
                raw.drain()
            if one.diff_id != diff_id:
                raise InvalidParameter(
                    f"invalid archive: layer {path} has diff_id {one.diff_id}, the config says {diff_id}"
                )
            if raw is not None and raw.sha.hexdigest() != expected:
                raise InvalidParameter(f"invalid archive: {path} does not match its digest")
            if plain and one.diff_id != f"sha256:{expected}":
                raise InvalidParameter(f"invalid archive: {path} does not match its digest")
        except BaseException:
            one.discard()
            raise
    return one


def _pin_if_present(store: ImageStore, chain: str) -> bool:
    """Keep a layer we already have (no need to unpack it again) from a concurrent GC."""
    try:
        store.pin(chain)
    except NotFound:
        return False
    return True
