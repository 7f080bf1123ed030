"""Crash-safe file writes: a reader sees the old content or the new, never a torn file."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil


def fsync_dir(path: str) -> None:
    """Make a rename/creation in `path` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


TEMP_PREFIX = ".tmp-"


def process_tag(pid: int) -> str | None:
    """ "<pid>.<start time>" of a live process, None if there is none.

    The start time (in clock ticks since boot) tells a process from a later
    one that got the same pid, e.g. a daemon restarted after a reboot.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Fields after the command name (which may contain spaces and parens).
    fields = stat_line[stat_line.rindex(b")") + 2 :].split()
    return f"{pid}.{int(fields[19])}"


_OWN_TAG: str | None = None


def own_tag() -> str:
    global _OWN_TAG
    tag = _OWN_TAG
    if tag is None or not tag.startswith(f"{os.getpid()}."):  # recomputed after fork
        tag = _OWN_TAG = process_tag(os.getpid()) or f"{os.getpid()}.0"
    return tag


def temp_name(directory: str, suffix: str = "") -> str:
    """A fresh name in `directory` tagged with our process, so that leftovers of
    a crashed process can be told apart from live work of another one."""
    return os.path.join(directory, f"{TEMP_PREFIX}{own_tag()}-{secrets.token_hex(8)}{suffix}")


def is_stale_temp(name: str) -> bool:
    """True for a temporary whose process is gone (see temp_name)."""
    if not name.startswith(TEMP_PREFIX):
        return False
    tag = name[len(TEMP_PREFIX) :].split("-", 1)[0]
    pid_text = tag.split(".", 1)[0]
    if not pid_text.isdigit():
        return True  # not ours to understand: an old or foreign leftover
    return process_tag(int(pid_text)) != tag


def remove_stale_temps(directory: str) -> None:
    """Remove the temporaries in `directory` left by crashed processes (never
    those of live ones, see is_stale_temp)."""
    for name in os.listdir(directory):
        if not is_stale_temp(name):
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


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
