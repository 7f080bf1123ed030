"""`docker image prune`: remove dangling images, or with dangling=false every
image no container uses.

dockerd's rules (daemon/images/image_prune.go): "dangling" means without a
tag (digest references do not count); an untagged image that is the parent of
another is an intermediate image, not dangling; filters until= (created
before), label=, label!=. The space reclaimed is what the removed layers held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.engine.clock import parse_rfc3339
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.image.reference import parse_reference

if TYPE_CHECKING:
    from dockyard.engine.images import ImageService

_FILTERS = ("dangling", "label", "label!", "until")
_TRUE = ("true", "1")
_FALSE = ("false", "0")


def _label_match(labels: dict[str, str], want: str) -> bool:
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _dangling_only(filters: dict[str, list[str]]) -> bool:
    values = filters.get("dangling", [])
    for value in values:
        if value.lower() not in _TRUE + _FALSE:
            raise InvalidParameter(f"invalid filter 'dangling={value}'")
    if not values:
        return True
    return values[-1].lower() in _TRUE


def prune(svc: ImageService, filters: dict[str, list[str]]) -> tuple[list[dict[str, str]], int]:
    """Returns (ImagesDeleted, SpaceReclaimed)."""
    for key in filters:
        if key not in _FILTERS:
            raise InvalidParameter(f"invalid filter '{key}'")
    dangling_only = _dangling_only(filters)
    # Imported here: container_ops imports the image service (a cycle at import time).
    from dockyard.engine.container_ops import _until as until_time

    until = None
    for value in filters.get("until", []):
        until = until_time(value)
    sizes = {chain: svc.blobs.layer(chain).size for chain in svc.blobs.all_layers()}
    parents = {svc.parent_of(i) for i in svc.image_ids()}
    deleted: list[dict[str, str]] = []
    for record in svc.list():
        image_id = record.id
        tags = [t for t in record.repo_tags if parse_reference(t).tag is not None]
        if dangling_only and tags:
            continue
        if not record.repo_tags and not record.repo_digests and image_id in parents:
            continue  # an intermediate image: removed with its child
        if until is not None and parse_rfc3339(record.created) >= until:
            continue
        labels = svc.labels(image_id) or {}
        if not all(_label_match(labels, w) for w in filters.get("label", [])):
            continue
        if any(_label_match(labels, w) for w in filters.get("label!", [])):
            continue
        if svc.users_of(image_id):
            continue  # as dockerd: images containers use are never pruned
        try:
            # By each name, so that the last one deletes (as dockerd); by id if none.
            for ref in record.repo_tags:
                deleted.extend(svc.delete(ref))
            if svc.has_image(image_id):
                deleted.extend(svc.delete(image_id))
        except (Conflict, NotFound):
            continue  # a container or a concurrent rmi took it meanwhile
    # Orphans (an interrupted pull's layers) go too: nothing unreferenced stays.
    svc.blobs.prune_layers(svc.image_ids())
    svc.distribution.forget_layers(svc.blobs.has_blob)
    remaining = set(svc.blobs.all_layers())
    reclaimed = sum(size for chain, size in sizes.items() if chain not in remaining)
    svc.events.emit("image", "prune", "", {"reclaimed": str(reclaimed)})
    return deleted, reclaimed
