"""Copying a directory of a layer stack's merged view into an empty directory.

This fills a new volume with what the image has at the volume's path (dockerd's
copy-up). The merged view is read as overlayfs shows it (top-most layer wins,
whiteouts hide, opaque directories cut off lower layers; see layered_read), every
step an openat(O_NOFOLLOW) relative to a directory fd, so a symlink in the image
or planted by a container is copied as a symlink and never followed out of the
stack. A path whose components are not plain directories is not copied.
"""

from __future__ import annotations

import os
import stat

from dockyard.image.layered_read import _close_all, _walk, lookup

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_tree(dirs: list[str], path: str, dest: str) -> bool:
    """Copy `path` of the merged view of `dirs` (top-most first) into `dest`, which
    exists and is empty. False if the view has no directory there."""
    roots: list[int] = []
    try:
        for d in dirs:
            try:
                roots.append(os.open(d, _DIR_FLAGS))
            except FileNotFoundError:
                continue
        parts = [p for p in path.split("/") if p and p != "."]
        if ".." in parts:
            return False
        active = _walk(roots, parts)
        if active is None:
            return False
        dest_fd = os.open(dest, _DIR_FLAGS)
        try:
            top = os.fstat(active[0])
            os.fchown(dest_fd, top.st_uid, top.st_gid)
            os.fchmod(dest_fd, stat.S_IMODE(top.st_mode))
            _copy_dir(active, dest_fd)
        finally:
            os.close(dest_fd)
            _close_all(active)
        return True
    finally:
        _close_all(roots)


def _copy_dir(active: list[int], dest_fd: int) -> None:
    names: list[str] = []
    seen: set[str] = set()
    for fd in active:
        for name in os.listdir(fd):
            if name not in seen:
                seen.add(name)
                names.append(name)
    for name in names:
        found = lookup(active, name)
        if found.kind == "dir":
            try:
                st = os.fstat(found.dirs[0])
                os.mkdir(name, 0o700, dir_fd=dest_fd)
                sub = os.open(name, _DIR_FLAGS, dir_fd=dest_fd)
                try:
                    _copy_dir(found.dirs, sub)
                    os.fchown(sub, st.st_uid, st.st_gid)
                    os.fchmod(sub, stat.S_IMODE(st.st_mode))
                finally:
                    os.close(sub)
            finally:
                _close_all(found.dirs)
        elif found.kind in ("file", "symlink"):
            _copy_entry(found.at, name, dest_fd)


def _copy_entry(src_dir: int, name: str, dest_fd: int) -> None:
    st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dest_fd)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dest_fd, follow_symlinks=False)
        return
    if not stat.S_ISREG(st.st_mode):
        return  # device nodes, fifos and sockets are not copied into a volume
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        dst = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dest_fd,
        )
        try:
            while os.sendfile(dst, src, None, 1 << 24):
                pass
            os.fchown(dst, st.st_uid, st.st_gid)
            os.fchmod(dst, stat.S_IMODE(st.st_mode))
        finally:
            os.close(dst)
    finally:
        os.close(src)
