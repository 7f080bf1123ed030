"""One error hierarchy for every layer.

`api/` maps these to HTTP status codes in one place; `cli/` maps them to one
line and an exit code. Messages are written the way dockerd words them,
because users (and scripts) match on them.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base of every error Dockyard raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DockyardError):
    """404: no such container, image, network, volume..."""


class Conflict(DockyardError):
    """409: name in use, container running, image in use..."""


class InvalidParameter(DockyardError):
    """400: malformed JSON, bad flag value, unknown option."""


class Unauthorized(DockyardError):
    """401: a registry refused the credentials (login, pull, push)."""


class PayloadTooLarge(InvalidParameter):
    """413: a request body over the limit the API reads."""


class Forbidden(DockyardError):
    """403: operation not allowed in this state."""


class NotModified(DockyardError):
    """304: container already started / already stopped."""


class Unavailable(DockyardError):
    """503: a service the request needs is not running."""


class RuntimeFailure(DockyardError):
    """The OCI runtime could not create or start the container's process.

    `kind` is 'not-found' (exec: no such file), 'permission' (exec: permission
    denied) or 'other'; the CLI turns these into exit codes 127/126/125.
    """

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


class KernelError(DockyardError):
    """A system call failed: which call, with what, and the errno."""

    def __init__(self, syscall: str, args: tuple[object, ...], errno: int) -> None:
        import os

        self.syscall = syscall
        self.args_ = args
        self.errno = errno
        shown = ", ".join(repr(a) for a in args)
        super().__init__(f"{syscall}({shown}): {os.strerror(errno)}")


class StorageFull(DockyardError):
    """The data root's file system is full (ENOSPC, EDQUOT, SQLite's "disk is full").

    A system error (500, as dockerd answers it) with one clear line: the
    operation that needed space fails, the daemon goes on."""


_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL, without importing sqlite3 here


def storage_full(exc: BaseException) -> StorageFull | None:
    """The StorageFull that `exc` amounts to, or None if it is something else."""
    import errno

    if isinstance(exc, StorageFull):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = exc.filename
        what = "no space left on device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        return StorageFull(f"write {where}: {what}" if where else what)
    if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
        return StorageFull("write dockyard.db: database or disk is full: no space left on device")
    return None
