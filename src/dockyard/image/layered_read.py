"""Reading one file through a stack of overlay layer directories.

Used to read /etc/passwd and /etc/group of an image or a container without
mounting it. The merged view is computed the way overlayfs does (top-most
layer wins, whiteouts hide, opaque directories cut off lower layers), and
every symlink is resolved *inside* the stack, so a container's
"/etc/passwd -> /etc/shadow" or "../../../etc" can never make the daemon read
a host file. Each step is an openat(O_NOFOLLOW) on a directory fd, so a
running container swapping a directory for a symlink cannot race us out.
"""

from __future__ import annotations

import errno
import os
import stat

OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(dir_fd: int) -> bool:
    try:
        return os.getxattr(dir_fd, OVERLAY_OPAQUE_XATTR) == b"y"
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
            return False
        raise


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


class _Found:
    """Result of looking one name up in the merged view."""

    def __init__(self, kind: str, dirs: list[int] | None = None, at: int = -1, name: str = ""):
        self.kind = kind  # "absent" | "dir" | "symlink" | "file"
        self.dirs = dirs or []  # for "dir": fds of that dir in each contributing layer
        self.at = at  # for symlink/file: fd of the layer directory holding it
        self.name = name


def lookup(active: list[int], name: str) -> _Found:
    """Look `name` up in one directory of the merged view, given that directory's
    fds in each layer (top-most first). Returned dir fds belong to the caller."""
    found_dirs: list[int] = []
    try:
        for fd in active:  # top-most first
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if is_whiteout(st):
                break
            if stat.S_ISDIR(st.st_mode):
                try:
                    dfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    break  # changed under us: treat as hidden
                found_dirs.append(dfd)
                if _is_opaque(dfd):
                    break
                continue
            if found_dirs:
                break  # a directory above hides non-directories below
            kind = "symlink" if stat.S_ISLNK(st.st_mode) else "file"
            return _Found(kind, at=fd, name=name)
    except BaseException:
        _close_all(found_dirs)
        raise
    if found_dirs:
        return _Found("dir", dirs=found_dirs)
    return _Found("absent")


def _walk(roots: list[int], parts: list[str]) -> list[int] | None:
    """fds of directory `parts` (already resolved, no symlinks) in every layer."""
    active = [os.dup(fd) for fd in roots]
    for part in parts:
        found = lookup(active, part)
        _close_all(active)
        if found.kind != "dir":
            return None
        active = found.dirs
    return active


def read_file(dirs: list[str], path: str) -> bytes | None:
    """Content of `path` in the merged view of `dirs` (top-most first); None if absent.

    None too when the path is a directory, a device or a dangling/looping link.
    Layer directories that do not exist are treated as empty.
    """
    fd = open_file(dirs, path)
    if fd is None:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_file(dirs: list[str], path: str) -> int | None:
    """Like read_file, but return an open fd of the regular file (the caller closes it)."""
    roots: list[int] = []
    try:
        for d in dirs:
            try:
                roots.append(os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            except FileNotFoundError:
                continue
        return _open(roots, path)
    finally:
        _close_all(roots)


def _open(roots: list[int], path: str) -> int | None:
    pending = list(reversed(path.split("/")))
    resolved: list[str] = []
    active = [os.dup(fd) for fd in roots]
    links = 0
    try:
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                # ".." at the root stays at the root, as inside the container.
                if resolved:
                    resolved.pop()
                    _close_all(active)
                    walked = _walk(roots, resolved)
                    active = walked if walked is not None else []
                    if walked is None:
                        return None
                continue
            found = lookup(active, part)
            is_last = not any(p not in ("", ".") for p in pending)
            if found.kind == "absent":
                return None
            if found.kind == "symlink":
                links += 1
                if links > _MAX_SYMLINKS:
                    return None
                target = os.readlink(found.name, dir_fd=found.at)
                pending.extend(reversed(target.split("/")))
                if target.startswith("/"):
                    resolved = []
                    _close_all(active)
                    active = [os.dup(fd) for fd in roots]
                continue
            if found.kind == "dir":
                _close_all(active)
                active = found.dirs
                resolved.append(part)
                if is_last:
                    return None
                continue
            if not is_last:
                return None  # a file used as a directory
            return _open_regular(found.at, found.name)
        return None  # the path named the root directory
    finally:
        _close_all(active)


def _open_regular(dir_fd: int, name: str) -> int | None:
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None  # swapped for a symlink, or unreadable
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    # O_NONBLOCK was only there so that opening a FIFO cannot hang us.
    os.set_blocking(fd, True)
    return fd
