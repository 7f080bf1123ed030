"""A container's changes as a new image: `docker commit`, and each build step.

The container's overlay upper dir becomes a layer tar (whiteouts as `.wh.`
entries, opaque dirs as `.wh..wh..opq`, owners, modes, capabilities and hard
links kept; see image/layer_tar.py), its diffID is computed while the store
unpacks it, and the image config gets a history entry as dockerd writes it
(image.NewChildImage): `created_by` is the container's command, and a step
that changed no file is an `empty_layer` without a diffID.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from dockyard.engine import container_ops
from dockyard.engine.models import ContainerConfig
from dockyard.errors import Conflict, InvalidParameter
from dockyard.image.changes import apply_changes
from dockyard.image.digest import chain_ids
from dockyard.image.mount_stubs import is_empty, mount_stubs
from dockyard.image.reference import parse_reference
from dockyard.image.store import ImageStore, Layer, now_rfc3339

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.images import ImageService


@dataclass
class CommitOptions:
    """POST /commit's query and body."""

    container: str
    repo: str = ""
    tag: str = ""
    comment: str = ""
    author: str = ""
    pause: bool = True
    changes: list[str] = field(default_factory=list)
    config: ContainerConfig | None = None


@dataclass
class ChildImage:
    """What a new image adds to its parent."""

    config: dict[str, Any]  # the image's "config" (Docker key names)
    created_by: str
    comment: str = ""
    author: str = ""
    container: str = ""
    container_config: dict[str, Any] | None = None


def config_dict(config: ContainerConfig) -> dict[str, Any]:
    """A container config in Docker's JSON shape (the image config's "config")."""
    out: dict[str, Any] = msgspec.to_builtins(config)
    if not config.shell:
        out.pop("Shell", None)
    return out


def container_layer(blobs: ImageStore, upper: str, parent_image: str | None) -> Layer | None:
    """Import `upper` as a layer on top of `parent_image`'s; None if it changed nothing.

    Runs in a worker thread, inside the caller's store lease."""
    lowers = blobs.lower_dirs(parent_image) if parent_image else []
    stubs = mount_stubs(upper, lowers)
    if is_empty(upper, stubs):
        return None
    chains = chain_ids(blobs.image_diff_ids(parent_image)) if parent_image else []
    # Made next to the container's upper dir, then moved into the store: see
    # copied_layers.staging_dir (where ext4 puts it decides how fast it is made).
    return blobs.import_directory(
        upper, chains[-1] if chains else None, exclude=stubs, stage_in=os.path.dirname(upper)
    )


def write_child_image(
    blobs: ImageStore, parent_image: str | None, layer: Layer | None, child: ChildImage
) -> str:
    """The image config of `parent_image` plus one layer (or an empty one) and its
    history entry; returns the new image id. Inside the caller's store lease."""
    parent = blobs.image_config(parent_image) if parent_image else {}
    diff_ids = list((parent.get("rootfs") or {}).get("diff_ids") or [])
    if layer is not None:
        diff_ids.append(layer.diff_id)
    created = now_rfc3339()
    entry: dict[str, Any] = {"created": created}
    if child.author:
        entry["author"] = child.author
    if child.created_by:
        entry["created_by"] = child.created_by
    if child.comment:
        entry["comment"] = child.comment
    if layer is None:
        entry["empty_layer"] = True
    extra: dict[str, Any] = {}
    if child.container:
        extra["container"] = child.container
    if child.container_config is not None:
        extra["container_config"] = child.container_config
    return blobs.create_image(
        diff_ids,
        child.config,
        comment=child.comment,
        author=child.author,
        created=created,
        history=[*(parent.get("history") or []), entry],
        extra=extra,
    )


def _merge_from_container(config: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """dockerd's commit merge(): what the given config leaves unset comes from
    the container's config."""
    out = dict(config)
    for key in ("User", "WorkingDir", "StopSignal", "Hostname", "Domainname", "Image"):
        if not out.get(key):
            out[key] = container.get(key) or out.get(key, "")
    env = list(out.get("Env") or [])
    keys = {e.partition("=")[0] for e in env}
    out["Env"] = env + [e for e in container.get("Env") or [] if e.partition("=")[0] not in keys]
    for key in ("ExposedPorts", "Volumes", "Labels"):
        if container.get(key):
            out[key] = {**container[key], **(out.get(key) or {})}
    if not out.get("Cmd") and not out.get("Entrypoint"):
        out["Cmd"] = container.get("Cmd")
    if not out.get("Entrypoint"):
        out["Entrypoint"] = container.get("Entrypoint")
    if not out.get("Healthcheck"):
        out["Healthcheck"] = container.get("Healthcheck")
    if not out.get("OnBuild"):
        out["OnBuild"] = container.get("OnBuild")
    return out


async def commit(containers: ContainerService, images: ImageService, opts: CommitOptions) -> str:
    """POST /commit: the container's changes as an image, tagged repo:tag if given."""
    c = containers.get(opts.container)
    ref = None
    if opts.repo:
        ref = parse_reference(f"{opts.repo}:{opts.tag}" if opts.tag else opts.repo)
        if ref.digest:
            raise InvalidParameter("refusing to create a tag with a digest reference")
    elif opts.tag:
        raise InvalidParameter("tag is given without a repository")
    container_cfg = config_dict(c.config)
    if opts.config is not None:
        base = _merge_from_container(config_dict(opts.config), container_cfg)
    else:
        base = container_cfg
    new_config = apply_changes(base, opts.changes)  # a typo fails before anything
    upper = os.path.join(c.bundle, "upper")
    paused_here = False
    if opts.pause and c.state.running and not c.state.paused:
        await container_ops.pause(containers, c.id)
        paused_here = True
    try:
        child = ChildImage(
            config=new_config,
            created_by=" ".join([c.path, *c.args]),
            comment=opts.comment,
            author=opts.author,
            container=c.id,
            container_config=container_cfg,
        )
        blobs = images.blobs

        def work() -> str:
            with blobs.lease():
                layer = container_layer(blobs, upper, c.image)
                return write_child_image(blobs, c.image, layer, child)

        # The copy is made in the bundle (container_layer): no removal deletes under it.
        async with containers.commit_lock(c.id):
            if c.state.status == "removing" or containers.removal_begun(c.id):
                raise Conflict(f"cannot commit container {c.id}: it is being removed")
            image_id = await asyncio.to_thread(work)
    finally:
        if paused_here and c.state.paused:
            await container_ops.unpause(containers, c.id)
    images.register_child(image_id, c.image)
    if ref is not None:
        images.name_image(image_id, str(ref))
    containers.emit(
        c, "commit", comment=opts.comment, imageID=image_id, imageRef=str(ref) if ref else ""
    )
    return image_id
