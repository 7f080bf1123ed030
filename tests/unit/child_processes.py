"""This test process's children of one name, alive or not yet reaped (a test that
starts a helper process asserts none is left behind)."""

from __future__ import annotations

import os


def children_named(comm: bytes) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                before, after = f.read().rsplit(b")", 1)
        except OSError:
            continue
        if before.split(b"(", 1)[1] == comm and int(after.split()[1]) == os.getpid():
            found.append(int(pid))
    return found


def tar_children() -> list[int]:
    """The `tar -x` children of image/tar_assist."""
    return children_named(b"tar")
