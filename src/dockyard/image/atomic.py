"""Crash-safe file writes: a reader sees the old content or the new, never a torn file."""

from __future__ import annotations

import contextlib
import os
import secrets


def fsync_dir(path: str) -> None:
    """Make a rename/creation in `path` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(directory: str, suffix: str = "") -> str:
    """A fresh name in `directory` tagged with our pid, so stale leftovers of a
    crashed process can be told apart from live work of another one."""
    return os.path.join(directory, f".tmp-{os.getpid()}-{secrets.token_hex(8)}{suffix}")


def write_file_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """tmp + fsync + rename in the same directory, then fsync the directory."""
    directory = os.path.dirname(path)
    tmp = temp_name(directory)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
