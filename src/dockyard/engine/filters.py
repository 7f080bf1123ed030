"""dockerd's `filters` for listing containers and images."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from dockyard.engine.clock import parse_rfc3339
from dockyard.errors import InvalidParameter, NotFound

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.models import Container, ImageRecord

CONTAINER_FILTERS = {
    "id", "name", "status", "label", "exited", "ancestor", "before", "since", "volume",
    "network", "health", "is-task", "publish", "expose",
}  # fmt: skip
IMAGE_FILTERS = {"dangling", "label", "before", "since", "reference"}
STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}


def normalize(raw: Any) -> dict[str, list[str]]:
    """Accept both `{"status": ["running"]}` and the older `{"status": {"running": true}}`."""
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid filter: filters must be a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            out[key] = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            out[key] = [str(value)]
    return out


def _check_keys(filters: dict[str, list[str]], allowed: set[str]) -> None:
    for key in filters:
        if key not in allowed:
            raise InvalidParameter(f"invalid filter '{key}'")


def _labels_match(labels: dict[str, str] | None, wanted: list[str]) -> bool:
    labels = labels or {}
    for w in wanted:
        key, eq, value = w.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def check_container_filters(filters: dict[str, list[str]]) -> None:
    """Refuse unknown keys and values up front, even when nothing would be listed."""
    _check_keys(filters, CONTAINER_FILTERS)
    for s in filters.get("status", []):
        if s not in STATUSES:
            raise InvalidParameter(f"invalid filter 'status={s}'")
    for v in filters.get("exited", []):
        try:
            int(v)
        except ValueError:
            raise InvalidParameter(f"invalid filter 'exited={v}'") from None


def _search(pattern: str, text: str) -> bool:
    """dockerd's filters.Match: a pattern that is not a valid regexp matches nothing."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def container_matches(c: Container, filters: dict[str, list[str]], svc: ContainerService) -> bool:
    """Whether `c` passes `filters` (already checked by check_container_filters)."""
    if not filters:
        return True
    if "id" in filters and not any(c.id.startswith(v) for v in filters["id"]):
        return False
    if "name" in filters and not any(_search(v, c.name[1:]) for v in filters["name"]):
        return False
    if "status" in filters:
        for s in filters["status"]:
            if s not in STATUSES:
                raise InvalidParameter(f"invalid filter 'status={s}': Invalid filter 'status={s}'")
        if c.state.status not in filters["status"]:
            return False
    if "label" in filters and not _labels_match(c.config.labels, filters["label"]):
        return False
    if "exited" in filters:
        codes = {int(v) for v in filters["exited"]}
        if c.state.running or c.state.status != "exited" or c.state.exit_code not in codes:
            return False
    if "ancestor" in filters:
        ok = False
        for name in filters["ancestor"]:
            try:
                ok = ok or svc.resolve_image(name) == c.image
            except NotFound:
                pass
        if not ok:
            return False
    for key, newer in (("before", False), ("since", True)):
        for ref in filters.get(key, []):
            other = svc.get(ref)
            if newer and c.created_unix <= other.created_unix:
                return False
            if not newer and c.created_unix >= other.created_unix:
                return False
    return not ("volume" in filters or "network" in filters or "publish" in filters)


def _reference_matches(tag: str, pattern: str) -> bool:
    import fnmatch

    name = tag.rsplit(":", 1)[0]
    return fnmatch.fnmatch(tag, pattern) or fnmatch.fnmatch(name, pattern)


def filter_images(
    images: list[ImageRecord],
    filters: dict[str, list[str]],
    labels_of: Callable[[str], dict[str, str] | None],
    created_of: Callable[[str], float],
) -> list[ImageRecord]:
    """dockerd's image list filters. With `reference`, an image shows only the names
    that matched (`docker images busybox` lists busybox's tags, not its other names)."""
    if not filters:
        return images
    _check_keys(filters, IMAGE_FILTERS)
    out = []
    for image in images:
        if "dangling" in filters:
            values = filters["dangling"]
            # dockerd's ExactMatch holds for a key given without values: dangling only.
            want = not values or values[0].lower() in ("true", "1")
            if want != (not image.repo_tags):
                continue
        if "label" in filters and not _labels_match(labels_of(image.id), filters["label"]):
            continue
        created = parse_rfc3339(image.created)
        if any(created >= created_of(ref) for ref in filters.get("before", [])):
            continue
        if any(created <= created_of(ref) for ref in filters.get("since", [])):
            continue
        if "reference" in filters:
            tags = [
                t
                for t in image.repo_tags
                if any(_reference_matches(t, p) for p in filters["reference"])
            ]
            if not tags:
                continue
            image = msgspec.structs.replace(image, repo_tags=tags)
        out.append(image)
    return out
