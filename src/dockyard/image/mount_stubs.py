"""What the runtime leaves in a container's upper dir only as mount points.

Binding /etc/hosts, /etc/hostname and /etc/resolv.conf (and /proc, /dev ...
for images without them) onto the rootfs makes empty files and directories
in the container's layer. dockerd keeps those in a separate "init" layer, so
neither `docker commit` nor a build step's layer contains them; here they
are left out of the layer tar instead.
"""

from __future__ import annotations

import os
import posixpath
import stat

from dockyard.image.layer_changes import exists_in

# Mount targets the runtime creates when the image lacks them.
MOUNT_TARGETS = (
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "dev/pts",
    "dev/shm",
    "dev/mqueue",
    "dev",
    "proc",
    "sys/fs/cgroup",
    "sys",
)


def mount_stubs(upper: str, lowers: list[str]) -> set[str]:
    """The paths (relative, "etc/hosts") of `upper` that are only mount stubs:
    absent from the image, and empty here (or holding only other stubs).
    Their parents made only for them ("etc" of a scratch image) go too."""
    stubs: set[str] = set()
    for rel in MOUNT_TARGETS:  # deepest first, so a parent sees its stub children
        if _is_stub(upper, rel, stubs) and not exists_in(lowers, rel):
            stubs.add(rel)
    for rel in sorted(stubs, key=lambda p: -p.count("/")):
        parent = posixpath.dirname(rel)
        while parent and parent not in stubs:
            if not _is_stub(upper, parent, stubs) or exists_in(lowers, parent):
                break
            stubs.add(parent)
            parent = posixpath.dirname(parent)
    return stubs


def _is_stub(upper: str, rel: str, stubs: set[str]) -> bool:
    path = os.path.join(upper, rel)
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if stat.S_ISDIR(st.st_mode):
        return all(posixpath.join(rel, name) in stubs for name in os.listdir(path))
    return False


def is_empty(upper: str, exclude: set[str]) -> bool:
    """Whether the container changed nothing but its mount stubs."""
    return all(name in exclude for name in os.listdir(upper))
