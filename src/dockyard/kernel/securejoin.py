"""Opening a path inside a container's root as the container would see it.

Mounts are made before pivot_root, while the host's / is still visible. An
image whose /etc is a symlink to "/../../../host/etc", or a container that
swaps a directory in a shared bind source for a symlink to / while another
container starts (the CVE-2021-30465 class), must not make the runtime
create or mount anything outside the root.

So a path is never checked as a string and then used again: the kernel
resolves it to an O_PATH fd with openat2(RESOLVE_IN_ROOT |
RESOLVE_NO_MAGICLINKS) (symlinks and ".." stay inside the root), missing
parts are created one component at a time relative to such an fd
(mkdirat, openat O_CREAT|O_EXCL|O_NOFOLLOW), and the mount goes onto the
fd. Where openat2 is missing, the same resolution is walked fd by fd.
"""

from __future__ import annotations

import errno
import os
import posixpath

from dockyard.errors import KernelError, RuntimeFailure
from dockyard.kernel.interface import Kernel

MAX_SYMLINKS = 40  # as the kernel's own limit (ELOOP)
# Creating a missing component and opening it again can lose to a racing
# container (it removes or swaps the new entry): retry, but not forever.
MAX_ATTEMPTS = 16
_DIR_MODE = 0o755
_FILE_MODE = 0o644

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Literal

    Create = Literal["dir", "file"] | None


def clean(path: str) -> str:
    """`path` as an absolute path with no "." or ".." ("/.." is "/")."""
    return posixpath.normpath("/" + path).replace("//", "/")


def open_in_root(kernel: Kernel, root_fd: int, path: str, create: Create = None) -> int:
    """An O_PATH fd of `path` inside the root that `root_fd` names, never outside it.

    With `create`, missing directories are made on the way and a missing last
    component becomes a directory or an empty file. The caller closes the fd.
    """
    path = clean(path)
    links = 0
    for _ in range(MAX_ATTEMPTS):
        try:
            return _resolve(kernel, root_fd, path)
        except KernelError as exc:
            if exc.errno != errno.ENOENT or create is None or path == "/":
                raise
        parent, name = posixpath.split(path)
        parent_fd = open_in_root(kernel, root_fd, parent, "dir")
        try:
            _create(kernel, parent_fd, name, create)
        except KernelError as exc:
            if exc.errno == errno.ENOENT:
                continue  # the parent was removed under us: resolve again
            if exc.errno != errno.EEXIST:
                raise
            # A dangling symlink (e.g. /etc/resolv.conf -> ../run/...): create
            # what it points at, still inside the root. Anything else that
            # exists now was made by a racer: resolve again.
            target = _symlink_target(kernel, parent_fd, name)
            if target is not None:
                links += 1
                if links > MAX_SYMLINKS:
                    raise RuntimeFailure(f"too many levels of symbolic links in {path!r}") from None
                path = clean(posixpath.join(parent, target))
        finally:
            kernel.close(parent_fd)
    raise RuntimeFailure(f"{path!r} in the container's root kept changing while it was created")


def _create(kernel: Kernel, parent_fd: int, name: str, create: Create) -> None:
    if create == "dir":
        kernel.mkdirat(parent_fd, name, _DIR_MODE)
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    kernel.close(kernel.open_at(parent_fd, name, flags, _FILE_MODE))


def _symlink_target(kernel: Kernel, dir_fd: int, name: str) -> str | None:
    try:
        return kernel.readlinkat(dir_fd, name)
    except KernelError:
        return None  # not a symlink (EINVAL), or gone again (ENOENT)


def _resolve(kernel: Kernel, root_fd: int, path: str) -> int:
    if not _openat2_missing:
        try:
            return kernel.open_in_root(root_fd, path, os.O_PATH)
        except KernelError as exc:
            # ENOSYS: Linux < 5.6. EPERM: a seccomp profile older than openat2 (the
            # daemon itself in a container) refuses what it does not know.
            if exc.errno not in (errno.ENOSYS, errno.EPERM):
                raise
            _openat2_missing.append(True)
    return walk_in_root(kernel, root_fd, path)


_openat2_missing: list[bool] = []  # set once: openat2 is missing or refused here


def walk_in_root(kernel: Kernel, root_fd: int, path: str) -> int:
    """RESOLVE_IN_ROOT in user space: one O_PATH|O_NOFOLLOW openat per component,
    symlinks read and resolved again from the root (absolute) or from the
    directory they sit in, ".." popped from the fds walked so far (never above
    the root), so the result is inside the root whatever is renamed meanwhile."""
    stack = [kernel.open_at(root_fd, ".", os.O_PATH | os.O_DIRECTORY)]
    # Components still to walk, the next one last (a list: collections is not on
    # dockyard-runtime run's path); a symlink's own components are pushed in reverse.
    pending = [p for p in reversed(path.split("/")) if p]
    links = 0
    try:
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                if len(stack) > 1:
                    kernel.close(stack.pop())
                continue
            fd = kernel.open_at(stack[-1], part, os.O_PATH | os.O_NOFOLLOW)
            target = _symlink_target(kernel, fd, "")
            if target is None:
                stack.append(fd)
                continue
            kernel.close(fd)
            links += 1
            if links > MAX_SYMLINKS:
                raise KernelError("openat", (root_fd, path), errno.ELOOP)
            if target.startswith("/"):
                while len(stack) > 1:
                    kernel.close(stack.pop())
            pending.extend(p for p in reversed(target.split("/")) if p)
        return stack.pop()
    finally:
        for fd in stack:
            kernel.close(fd)
