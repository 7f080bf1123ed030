"""The image service: names, tags and lifetimes of images.

The bytes (blobs, layers) belong to `image.store.ImageStore`; this service keeps
which names point where, which containers hold an image, and dockerd's rules for
untagging versus deleting.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import IO, Any

from dockyard.engine import image_archives, image_history, image_prune, image_pull, image_push
from dockyard.engine.clock import parse_rfc3339, rfc3339
from dockyard.engine.distribution_metadata import DistributionMetadata
from dockyard.engine.events import EventBus
from dockyard.engine.filters import filter_images
from dockyard.engine.models import ImageInfo, ImageRecord
from dockyard.engine.progress import ProgressStream
from dockyard.engine.store import Store
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.image.archive import SavedImage
from dockyard.image.digest import chain_ids
from dockyard.image.reference import Reference, parse_reference
from dockyard.image.registry import Registry, new_session
from dockyard.image.registry_auth import AuthConfig, InsecureRegistries
from dockyard.image.store import ImageStore

log = logging.getLogger("dockyard.images")


def _hex(image_id: str) -> str:
    return image_id.removeprefix("sha256:")


def _registry_domain(server: str) -> str:
    """A login's serveraddress ("https://index.docker.io/v1/", "127.0.0.1:5000") as a domain."""
    host = server.strip()
    for prefix in ("https://", "http://"):
        host = host.removeprefix(prefix)
    host = host.split("/", 1)[0]
    if host in ("", "index.docker.io", "registry-1.docker.io", "docker.io"):
        return "docker.io"
    return host


class ImageService:
    def __init__(self, store: Store, blobs: ImageStore, tmp_dir: str) -> None:
        self._store = store
        self.blobs = blobs
        self._tmp_dir = tmp_dir
        # Registries that may be reached over http (--insecure-registry); set by the daemon.
        self.insecure = InsecureRegistries()
        # Blob sources and compressed forms of layers, for push (dockerd's v2 metadata).
        self.distribution = DistributionMetadata(blobs.root)
        self._images: dict[str, ImageRecord] = {r.id: r for r in store.images()}
        self._tags: dict[str, str] = store.tags()
        # Set by the container service: image id -> (container id, running) users.
        self.users_of: Callable[[str], list[tuple[str, bool]]] = lambda _id: []
        self.events = EventBus()  # the daemon's shared bus, set by Services

    def emit(self, action: str, actor_id: str, name: str) -> None:
        """An image event as dockerd's: the name, and the image's labels."""
        attrs: dict[str, str] = {}
        if actor_id in self._images:
            attrs.update(self.labels(actor_id) or {})
        attrs["name"] = name
        self.events.emit("image", action, actor_id, attrs)

    # lookups

    def tags_of(self, image_id: str) -> list[str]:
        return sorted(ref for ref, iid in self._tags.items() if iid == image_id)

    def _with_tags(self, record: ImageRecord) -> ImageRecord:
        record.repo_tags = self.tags_of(record.id)
        return record

    def resolve(self, name: str) -> str:
        """Find an image id by reference, full id or unique id prefix."""
        image_id = self._lookup(name)
        if image_id is None:
            raise NotFound(f"No such image: {self._display(name)}")
        return image_id

    def _display(self, name: str) -> str:
        try:
            return str(parse_reference(name))
        except InvalidParameter:
            return name

    def _lookup(self, name: str) -> str | None:
        if not name:
            return None
        candidate = name if name.startswith("sha256:") else "sha256:" + name
        if candidate in self._images:
            return candidate
        try:
            ref = parse_reference(name)
        except InvalidParameter:
            ref = None
        if ref is not None and ref.digest is None:
            found = self._tags.get(str(ref))
            if found:
                return found
        if ref is not None and ref.digest is not None:
            wanted = f"{ref.familiar_name}@{ref.digest}"
            for record in self._images.values():
                if wanted in record.repo_digests:
                    return record.id
        # An id prefix: at least one hex char, unique among images.
        hexpart = _hex(name)
        if hexpart and all(c in "0123456789abcdef" for c in hexpart):
            matches = [i for i in self._images if _hex(i).startswith(hexpart)]
            if len(matches) == 1:
                return matches[0]
        return None

    def get(self, name: str) -> ImageRecord:
        return self._with_tags(self._images[self.resolve(name)])

    def inspect(self, name: str) -> ImageInfo:
        record = self.get(name)
        return ImageInfo(record=record, config=self.blobs.image_config(record.id))

    def config(self, image_id: str) -> dict[str, Any]:
        return self.blobs.image_config(image_id)

    def list(
        self, filters: dict[str, list[str]] | None = None, all_: bool = False
    ) -> list[ImageRecord]:
        """Newest first; without `all_`, as dockerd, no intermediate image (untagged,
        the parent of another: a build's steps)."""
        parents = {r.parent for r in self._images.values() if r.parent}
        records = sorted(
            (
                self._with_tags(r)
                for r in self._images.values()
                if all_ or r.id not in parents or self.tags_of(r.id)
            ),
            key=lambda r: r.created,
            reverse=True,
        )
        return filter_images(records, filters or {}, self.labels, self._created_of)

    def children_of(self, image_id: str) -> list[str]:
        """Images made from this one (commit, build steps)."""
        return [r.id for r in self._images.values() if r.parent == image_id]

    def register_child(self, image_id: str, parent: str) -> None:
        """A committed or built image, with the image it was made from as its parent."""
        self._register(image_id, parent)

    def labels(self, image_id: str) -> dict[str, str] | None:
        return (self.config(image_id).get("config") or {}).get("Labels")

    def _created_of(self, name: str) -> float:
        return parse_rfc3339(self._images[self.resolve(name)].created)

    # changes

    async def import_rootfs(
        self,
        body: Callable[[IO[bytes]], Any],
        *,
        repo: str = "",
        tag: str = "",
        changes: list[str] | None = None,
        message: str = "",
    ) -> str:
        """`docker import`: `body` is an async callable that copies the upload into a file."""
        ref = None
        if repo:
            ref = parse_reference(f"{repo}:{tag}" if tag else repo)
        os.makedirs(self._tmp_dir, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="import-", dir=self._tmp_dir)
        try:
            with os.fdopen(fd, "w+b") as f:
                await body(f)
                f.flush()
                f.seek(0)
                image_id = await asyncio.to_thread(
                    self.blobs.import_rootfs, f, changes=changes or [], message=message
                )
        finally:
            os.unlink(path)
        self._register(image_id)
        if ref is not None:
            self._set_tag(str(ref), image_id)
            self._tagged_now(image_id)
        self.emit("import", image_id, image_id)
        return image_id

    def _register(self, image_id: str, parent: str = "") -> None:
        if image_id in self._images:
            return
        cfg = self.blobs.image_config(image_id)
        history = cfg.get("history") or [{}]
        record = ImageRecord(
            id=image_id,
            created=cfg.get("created", ""),
            size=self.blobs.image_size(image_id),
            comment=history[-1].get("comment", ""),
            parent=parent,
        )
        self._store.put_image(record)
        self._images[image_id] = record

    def _set_tag(self, ref: str, image_id: str) -> None:
        self._store.set_tag(ref, image_id)
        self._tags[ref] = image_id

    def tag(self, source: str, repo: str, tag: str = "") -> str:
        image_id = self.resolve(source)
        ref = parse_reference(f"{repo}:{tag}" if tag else repo)
        if ref.digest:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        self._set_tag(str(ref), image_id)
        self._tagged_now(image_id)
        self.emit("tag", image_id, str(ref))
        return str(ref)

    def _tagged_now(self, image_id: str) -> None:
        """dockerd's TagImage records the time (a pull or a load does not)."""
        record = self._images[image_id]
        record.last_tag_time = rfc3339()
        self._store.put_image(record)

    def delete(self, name: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """dockerd's rules: a name untags; the last name or an id deletes, unless in use."""
        image_id = self.resolve(name)
        tags = self.tags_of(image_id)
        by_ref: str | None = None
        try:
            parsed = parse_reference(name)
            if str(parsed) in self._tags:
                by_ref = str(parsed)
        except InvalidParameter:
            pass
        users = self.users_of(image_id)
        short = _hex(image_id)[:12]
        result: list[dict[str, str]] = []
        if by_ref is not None and (len(tags) > 1 or (force and users)):
            # Only a name goes: the image stays for its other names (or its users).
            self._untag(by_ref)
            return [{"Untagged": by_ref}]
        running = [cid for cid, up in users if up]
        if running:
            if by_ref is not None and not force:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" '
                    f"(must force) - container {running[0][:12]} is using its referenced image {short}"
                )
            raise Conflict(
                f"conflict: unable to delete {short} (cannot be forced) - image is being used "
                f"by running container {running[0][:12]}"
            )
        if users and not force:
            if by_ref is not None:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" '
                    f"(must force) - container {users[0][0][:12]} is using its referenced image {short}"
                )
            raise Conflict(
                f"conflict: unable to delete {short} (must be forced) - image is being used "
                f"by stopped container {users[0][0][:12]}"
            )
        if by_ref is None and len(tags) > 1 and not force:
            raise Conflict(
                f"conflict: unable to delete {short} (must be forced) - image is referenced "
                "in multiple repositories"
            )
        children = self.children_of(image_id)
        if children and by_ref is None:
            raise Conflict(
                f"conflict: unable to delete {short} (cannot be forced) - image has "
                "dependent child images"
            )
        for ref in tags:
            self._untag(ref)
            result.append({"Untagged": ref})
        if users or children:
            # Forced while stopped containers use it, or the parent of other images
            # (a build's base): dockerd only untags then.
            return result
        # Its digest references (from pull/push) go with it, as dockerd lists them.
        result.extend({"Untagged": d} for d in self._images[image_id].repo_digests)
        parent = self._images[image_id].parent
        self._delete_record(image_id)
        result.append({"Deleted": image_id})
        if prune and self._unused_parent(parent):
            # dockerd: the untagged parents go too, unless noprune=1.
            result.extend(self.delete(parent, prune=True))
        return result

    def _unused_parent(self, image_id: str) -> bool:
        """An untagged image (a commit's or build's parent) nothing else holds."""
        record = self._images.get(image_id)
        if record is None or self.tags_of(image_id) or record.repo_digests:
            return False
        if any(r.parent == image_id for r in self._images.values()):
            return False
        return not self.users_of(image_id)

    def remove_intermediate(self, image_id: str) -> None:
        """Drop an untagged, unused image that others were built on (`builder prune`):
        its children take its parent as theirs; layers they use stay."""
        if self.tags_of(image_id) or self.users_of(image_id):
            raise Conflict(f"image {image_id[7:19]} is tagged or in use")
        parent = self._images[image_id].parent
        for child in self.children_of(image_id):
            record = self._images[child]
            record.parent = parent
            self._store.put_image(record)
        self._delete_record(image_id)

    def _delete_record(self, image_id: str) -> None:
        self.emit("delete", image_id, image_id)
        self._store.delete_image(image_id)
        del self._images[image_id]
        self.blobs.delete_image(image_id, keep=set(self._images))
        self.distribution.forget_layers(self.blobs.has_blob)

    # registries

    @property
    def tmp_dir(self) -> str:
        return self._tmp_dir

    def has_image(self, image_id: str) -> bool:
        return image_id in self._images

    def parent_of(self, image_id: str) -> str:
        record = self._images.get(image_id)
        return record.parent if record is not None else ""

    def history(self, name: str, platform: str | None = None) -> list[dict[str, Any]]:
        """`GET /images/{name}/history` (engine/image_history.py)."""
        return image_history.history(self, name, platform)

    def prune(self, filters: dict[str, list[str]]) -> tuple[list[dict[str, str]], int]:
        """`POST /images/prune` (engine/image_prune.py)."""
        return image_prune.prune(self, filters)

    def image_ids(self) -> set[str]:
        return set(self._images)

    def chain_ids_of(self, image_id: str) -> list[str]:
        return chain_ids(self.blobs.image_diff_ids(image_id))

    def name_pulled(self, image_id: str, ref: Reference, manifest_digest: str) -> None:
        """Register a pulled image, point its tag at it and record its repo digest."""
        self._register(image_id)
        if ref.digest is None:
            self._set_tag(str(ref), image_id)
        self.record_repo_digest(image_id, ref, manifest_digest)

    def record_repo_digest(self, image_id: str, ref: Reference, digest: str) -> None:
        entry = f"{ref.familiar_name}@{digest}"
        for record in self._images.values():  # a digest names one image
            if entry in record.repo_digests and record.id != image_id:
                record.repo_digests.remove(entry)
                self._store.put_image(record)
        record = self._images[image_id]
        if entry not in record.repo_digests:
            record.repo_digests.append(entry)
            self._store.put_image(record)

    async def pull(
        self,
        from_image: str,
        tag: str,
        auth: AuthConfig,
        progress: ProgressStream,
        platform: str | None = None,
    ) -> list[str]:
        """`POST /images/create?fromImage=`: pull a tag, a digest, or every tag; return ids."""
        image_pull.parse_platform(platform)  # a bad --platform fails before any traffic
        ref = parse_reference(from_image, default_tag=None)
        if tag:
            # As dockerd: the tag (or digest) parameter wins over one in fromImage.
            if tag.startswith("sha256:"):
                ref = parse_reference(f"{ref.name}@{tag}")
            else:
                ref = ref.with_tag(tag)
        if ref.tag is not None or ref.digest is not None:
            refs = [ref]
        else:
            # Neither tag nor digest: every tag of the repository (docker pull --all-tags).
            async with new_session() as session:
                registry = Registry(session, ref.domain, auth, self.insecure)
                refs = [ref.with_tag(t) for t in await registry.list_tags(ref.path)]
        ids = []
        for one in refs:
            ids.append(await image_pull.pull(self, one, auth, progress, platform))
            self.emit("pull", str(one), str(one))
        return ids

    def check_platform(self, image_id: str, platform: str | None) -> None:
        """`--platform` on save/load/push: the image must be for that platform.

        Images here are single-platform, so the option selects nothing; it
        is checked rather than ignored.
        """
        if not platform:
            return
        want = image_pull.parse_platform(platform)
        config = self.config(image_id)
        have = image_pull.Platform(
            str(config.get("os") or "linux"),
            str(config.get("architecture") or ""),
            str(config.get("variant") or ""),
        )
        if (have.os, have.architecture) != (want.os, want.architecture) or (
            want.variant and want.variant != have.variant
        ):
            raise NotFound(
                f"image {image_id[7:19]} is for {have}, not for the requested platform {want}"
            )

    def push_refs(self, name: str, tag: str, platform: str | None = None) -> list[Reference]:
        """The local tags `docker push NAME[:TAG]` sends (every tag of NAME without one)."""
        refs = self._push_refs(name, tag)
        for ref in refs:
            self.check_platform(self._tags[str(ref)], platform)
        return refs

    def _push_refs(self, name: str, tag: str) -> list[Reference]:
        ref = parse_reference(name, default_tag=None)
        if ref.digest is not None:
            raise InvalidParameter("cannot push a digest reference")
        if tag:
            ref = ref.with_tag(tag)
        if ref.tag is not None:
            if str(ref) not in self._tags:
                raise NotFound(f"An image does not exist locally with the tag: {ref}")
            return [ref]
        refs = [
            parse_reference(t) for t in sorted(self._tags) if parse_reference(t).name == ref.name
        ]
        if not refs:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        return refs

    async def push(self, refs: list[Reference], auth: AuthConfig, progress: ProgressStream) -> None:
        await image_push.push(self, refs, auth, progress)

    async def login(self, server: str, auth: AuthConfig) -> None:
        """`POST /auth`: check credentials against the registry (Unauthorized if refused)."""
        domain = _registry_domain(server)
        async with new_session() as session:
            await Registry(session, domain, auth, self.insecure).login()

    # save / load (engine/image_archives.py)

    def save_plan(self, names: list[str], platform: str | None = None) -> list[SavedImage]:
        return image_archives.save_plan(self, names, platform)

    async def save(self, plan: list[SavedImage], write: Callable[[bytes], Awaitable[None]]) -> None:
        await image_archives.save(self, plan, write)
        for saved in plan:
            self.emit("save", saved.image_id, saved.image_id)

    async def load(
        self,
        chunks: AsyncIterable[bytes] | image_archives.Readable,
        progress: ProgressStream | None = None,
        platform: str | None = None,
    ) -> list[str]:
        return await image_archives.load(self, chunks, progress, platform)

    def tagged(self) -> dict[str, str]:
        """Every tag and the image it names."""
        return dict(self._tags)

    def name_image(self, image_id: str, ref: str | None) -> str | None:
        """Register an image now in the store; point `ref` at it. Returns the image
        `ref` named before, if another."""
        self._register(image_id)
        if ref is None:
            return None
        previous = self._tags.get(ref)
        self._set_tag(ref, image_id)
        return previous if previous != image_id else None

    def _untag(self, ref: str) -> None:
        self._store.delete_tag(ref)
        image_id = self._tags.pop(ref, None)
        if image_id is not None:
            self.emit("untag", image_id, image_id)

    def cleanup_tmp(self) -> None:
        from dockyard.engine.build.copy_step import unmount_under

        # A build a crash interrupted may have left an overlay mounted in there.
        if os.path.isdir(self._tmp_dir):
            unmount_under(self._tmp_dir)
        shutil.rmtree(self._tmp_dir, ignore_errors=True)
