"""Resolving a path inside a container's root as the container would see it.

Mounts are made before pivot_root, while the host's / is still visible. An
image whose /etc is a symlink to "/../../../host/etc" must not make the
runtime mount over the host: symlinks are followed here relative to the
container's root, and ".." stops at that root (like filepath-securejoin,
which runc uses).
"""

from __future__ import annotations

import os
import stat
from collections import deque

from dockyard.errors import RuntimeFailure

MAX_SYMLINKS = 255


def resolve_in_root(root: str, path: str) -> str:
    """The host path of `path` inside `root`, never outside it.

    Components that do not exist (yet) are taken literally; the caller
    creates them.
    """
    root = root.rstrip("/") or "/"
    pending = deque(p for p in path.split("/") if p)
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.popleft()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            mode = os.lstat(candidate).st_mode
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(mode):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise RuntimeFailure(f"too many levels of symbolic links in {path!r}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extendleft(reversed([p for p in target.split("/") if p]))
    return os.path.join(root, *resolved) if resolved else root
