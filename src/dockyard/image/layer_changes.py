"""`docker diff`: what a container's upper directory changed in its image's view.

A = added, C = changed (it was in the image), D = deleted (an overlay whiteout,
or an opaque directory: deleted and made again).
The upper directory is only lstat'ed (never followed: the container may swap
entries for symlinks while we walk); the image's layers are asked through
layered_read's fd-based lookup, so no symlink in them leads outside.
"""

from __future__ import annotations

import os
import stat

from dockyard.image.layered_read import (
    OVERLAY_OPAQUE_XATTR,
    _close_all,
    _walk,
    is_whiteout,
    lookup,
)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# dockerd's ChangeType values in GET /containers/{id}/changes
MODIFIED, ADDED, DELETED = 0, 1, 2


def _lower_stat(roots: list[int], rel: str) -> os.stat_result | None:
    """lstat of `rel` in the image's merged view (its top-most copy); None if absent."""
    parts = rel.split("/")
    dirs = _walk(roots, parts[:-1])
    if dirs is None:
        return None
    try:
        found = lookup(dirs, parts[-1])
        try:
            if found.kind == "absent":
                return None
            if found.kind == "dir":
                return os.fstat(found.dirs[0])
            return os.stat(found.name, dir_fd=found.at, follow_symlinks=False)
        finally:
            _close_all(found.dirs)
    except FileNotFoundError:
        return None
    finally:
        _close_all(dirs)


def _same_time(a: int, b: int) -> bool:
    # dockerd's sameFsTime: equal, or equal seconds where one side has no nanoseconds.
    return a == b or (a // 1_000_000_000 == b // 1_000_000_000 and 0 in (a % 10**9, b % 10**9))


def _is_opaque(dir_fd: int) -> bool:
    try:
        return os.getxattr(dir_fd, OVERLAY_OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def changes(upper: str, lowers: list[str]) -> list[tuple[str, int]]:
    """[(path, kind)] in dockerd's order (archive.OverlayChanges): the upper dir walked
    in lexical order; a whiteout or an opaque directory is a deletion; an entry the
    image has is a change, except a directory whose size, mode and mtime are the
    image's (only a parent of changes); the parent of an addition or a deletion is
    listed as changed just before it, once."""
    roots = [os.open(d, _DIR_FLAGS) for d in lowers]
    out: list[tuple[str, int]] = []
    changed_dirs: set[str] = set()
    try:
        top = os.open(upper, _DIR_FLAGS)
        try:
            _walk_upper(top, "", roots, out, changed_dirs)
        finally:
            os.close(top)
    finally:
        _close_all(roots)
    return out


def _walk_upper(
    dir_fd: int, rel_dir: str, roots: list[int], out: list[tuple[str, int]], changed: set[str]
) -> None:
    for name in sorted(os.listdir(dir_fd)):
        rel = f"{rel_dir}/{name}" if rel_dir else name
        path = "/" + rel
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile
        is_dir = stat.S_ISDIR(st.st_mode)
        child = None
        if is_dir:
            try:
                # O_NOFOLLOW relative to its parent: a swapped-in symlink is never walked.
                child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue
        try:
            kind: int | None
            if is_whiteout(st) or (child is not None and _is_opaque(child)):
                kind = DELETED
            else:
                kind = ADDED
                below = _lower_stat(roots, rel)
                if below is not None:
                    kind = MODIFIED
                    if (
                        is_dir
                        and stat.S_ISDIR(below.st_mode)
                        and st.st_size == below.st_size
                        and st.st_mode == below.st_mode
                        and _same_time(st.st_mtime_ns, below.st_mtime_ns)
                    ):
                        kind = None  # only on the way to a change below it
            if kind is not None:
                if is_dir:
                    changed.add(path)
                parent = "/" + rel_dir
                if kind != MODIFIED and rel_dir and parent not in changed:
                    out.append((parent, MODIFIED))
                    changed.add(parent)
                out.append((path, kind))
            if child is not None:
                _walk_upper(child, rel, roots, out, changed)
        finally:
            if child is not None:
                os.close(child)


def exists_in(lowers: list[str], rel: str) -> bool:
    """Whether `rel` ("etc/hosts") is in the merged view of `lowers` (top-most first)."""
    roots = [os.open(d, _DIR_FLAGS) for d in lowers]
    try:
        return _lower_stat(roots, rel) is not None
    finally:
        _close_all(roots)
