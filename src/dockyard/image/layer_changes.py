"""`docker diff`: what a container's upper directory changed in its image's view.

A = added, C = changed (it was in the image), D = deleted (an overlay whiteout).
The upper directory is only lstat'ed (never followed: the container may swap
entries for symlinks while we walk); the image's layers are asked through
layered_read's fd-based lookup, so no symlink in them leads outside.
"""

from __future__ import annotations

import os
import stat

from dockyard.image.layered_read import _close_all, _walk, is_whiteout, lookup

# dockerd's ChangeType values in GET /containers/{id}/changes
MODIFIED, ADDED, DELETED = 0, 1, 2


def _in_lower(roots: list[int], rel: str) -> bool:
    parts = rel.split("/")
    dirs = _walk(roots, parts[:-1])
    if dirs is None:
        return False
    try:
        found = lookup(dirs, parts[-1])
        _close_all(found.dirs)
        return found.kind != "absent"
    finally:
        _close_all(dirs)


def changes(upper: str, lowers: list[str]) -> list[tuple[str, int]]:
    """[(path, kind)] sorted by path, as dockerd lists them."""
    roots = [os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) for d in lowers]
    out: list[tuple[str, int]] = []
    try:
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            try:
                names = os.listdir(os.path.join(upper, rel_dir) if rel_dir else upper)
            except OSError:
                continue
            for name in names:
                rel = f"{rel_dir}/{name}" if rel_dir else name
                try:
                    st = os.lstat(os.path.join(upper, rel))
                except OSError:
                    continue
                if is_whiteout(st):
                    out.append(("/" + rel, DELETED))
                    continue
                existed = _in_lower(roots, rel)
                out.append(("/" + rel, MODIFIED if existed else ADDED))
                if stat.S_ISDIR(st.st_mode):
                    stack.append(rel)
    finally:
        _close_all(roots)
    out.sort()
    return out
