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

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
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
    roots = [os.open(d, _DIR_FLAGS) for d in lowers]
    out: list[tuple[str, int]] = []
    # (fd, path) of directories of the upper dir still to list; each opened with
    # O_NOFOLLOW relative to its parent, so a swapped-in symlink is never walked.
    stack = [(os.open(upper, _DIR_FLAGS), "")]
    try:
        while stack:
            dir_fd, rel_dir = stack.pop()
            try:
                for name in os.listdir(dir_fd):
                    rel = f"{rel_dir}/{name}" if rel_dir else name
                    try:
                        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    except OSError:
                        continue
                    if is_whiteout(st):
                        out.append(("/" + rel, DELETED))
                        continue
                    out.append(("/" + rel, MODIFIED if _in_lower(roots, rel) else ADDED))
                    if stat.S_ISDIR(st.st_mode):
                        try:
                            stack.append((os.open(name, _DIR_FLAGS, dir_fd=dir_fd), rel))
                        except OSError:
                            continue  # replaced meanwhile
            finally:
                os.close(dir_fd)
    finally:
        _close_all([fd for fd, _ in stack])
        _close_all(roots)
    out.sort()
    return out
