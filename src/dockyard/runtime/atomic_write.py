"""write_atomic: a file replaced whole (tmp + optional fsync + rename)."""

from __future__ import annotations

import os


def write_atomic(path: str, data: bytes, *, durable: bool = True) -> None:
    """tmp + fsync + rename: a crash leaves the old file or the new one.

    `durable=False` skips the fsync (about half a millisecond) for files that
    only matter while this boot lasts or are rewritten before every use (a
    bundle's config.json, state.json, the start trace): a crash of the process
    still leaves the old file or the new one, and after a power loss the worst
    is an empty file, which readers take as absent.
    """
    os.rename(stage_atomic(path, data, durable=durable), path)


def stage_atomic(path: str, data: bytes, *, durable: bool = True) -> str:
    """write_atomic's first half: `data` in a temporary file beside `path`, whose
    name it returns; renaming that onto `path` is the second half."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    return tmp
