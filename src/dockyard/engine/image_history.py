"""`docker history`: an image's history entries with the layer each one made.

dockerd's rules (daemon/images/image_history.go): entries newest first, each
non-empty entry sized by the layer it made (the unpacked diff size), the
image's id and tags on the top entry, then on each parent image's entry as
far as parents are known; every other entry is "<missing>".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockyard.engine.clock import parse_rfc3339
from dockyard.errors import InvalidParameter
from dockyard.image.digest import chain_id
from dockyard.image.reference import parse_reference

if TYPE_CHECKING:
    from dockyard.engine.images import ImageService


def history(svc: ImageService, name: str, platform: str | None = None) -> list[dict[str, Any]]:
    image_id = svc.resolve(name)
    svc.check_platform(image_id, platform)
    config = svc.config(image_id)
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    out: list[dict[str, Any]] = []
    chain: str | None = None
    used = 0
    for entry in config.get("history") or []:
        size = 0
        if not entry.get("empty_layer"):
            if used >= len(diff_ids):
                raise InvalidParameter("too many non-empty layers in History section")
            chain = chain_id(chain, diff_ids[used])
            size = svc.blobs.layer(chain).size
            used += 1
        out.append(
            {
                "Id": "<missing>",
                "Created": int(parse_rfc3339(str(entry.get("created") or ""))),
                "CreatedBy": str(entry.get("created_by") or ""),
                "Tags": None,
                "Size": size,
                "Comment": str(entry.get("comment") or ""),
            }
        )
    out.reverse()
    current: str | None = image_id
    for item in out:
        if current is None or not svc.has_image(current):
            break
        item["Id"] = current
        item["Tags"] = _tags(svc, current) or None
        current = svc.parent_of(current) or None
    return out


def _tags(svc: ImageService, image_id: str) -> list[str]:
    """Familiar name:tag references (digest references are not tags)."""
    tags = []
    for ref in svc.tags_of(image_id):
        parsed = parse_reference(ref)
        if parsed.tag is not None:
            tags.append(ref)
    return tags
