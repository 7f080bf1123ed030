"""`docker builder prune` for the classic builder: its cache is the intermediate
images builds leave (untagged images made from a parent). Pruning removes those
no tagged image stands on and no container uses; a tagged image's own chain
stays (it is what rebuilding it reuses). Without `all`, the top of an untagged
chain (the result of a build without -t) stays, as dangling images are
`image prune`'s; with `all` it goes too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.errors import Conflict, InvalidParameter, NotFound

if TYPE_CHECKING:
    from dockyard.engine.images import ImageService
    from dockyard.engine.models import ImageRecord


def prune(images: ImageService, filters: dict[str, list[str]], all_: bool) -> tuple[list[str], int]:
    """(removed image ids, bytes reclaimed)."""
    if filters:
        raise InvalidParameter(
            f"invalid filter '{next(iter(filters))}' for the classic builder's cache"
        )
    records = {i: images.get(i) for i in images.image_ids()}
    keep: set[str] = set()
    for image_id, record in records.items():
        if record.repo_tags or images.users_of(image_id):
            current: str | None = image_id
            while current and current not in keep:  # the chain a tagged image stands on
                keep.add(current)
                current = records[current].parent if current in records else None
    has_children = {r.parent for r in records.values() if r.parent}
    doomed = [
        i for i, r in records.items() if i not in keep and r.parent and (all_ or i in has_children)
    ]
    removed: list[str] = []
    reclaimed = 0
    for image_id in sorted(doomed, key=lambda i: -_depth(i, records)):
        own = records[image_id].size - _size(records.get(records[image_id].parent))
        try:
            images.remove_intermediate(image_id)
        except (Conflict, NotFound):
            continue  # tagged or used meanwhile
        removed.append(image_id)
        reclaimed += max(own, 0)
    return removed, reclaimed


def _size(record: ImageRecord | None) -> int:
    return record.size if record is not None else 0


def _depth(image_id: str, records: dict[str, ImageRecord]) -> int:
    n = 0
    current = records[image_id].parent
    while current in records:
        n += 1
        current = records[current].parent
    return n
