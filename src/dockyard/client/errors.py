"""Errors the client raises; the CLI turns each into one line and an exit code."""

from __future__ import annotations

from dockyard.errors import DockyardError


class APIError(DockyardError):
    """The daemon answered with a non-2xx status and (usually) {"message": ...}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def not_found(self) -> bool:
        return self.status == 404


class DaemonUnreachable(DockyardError):
    """No daemon listens at the selected host."""

    def __init__(self, host_url: str, reason: str = "", permission: bool = False) -> None:
        # docker's wording and capitalisation, with our name
        if permission:
            message = (
                "permission denied while trying to connect to the Dockyard daemon socket "
                f"at {host_url}: connect: permission denied"
            )
        else:
            message = (
                f"Cannot connect to the Dockyard daemon at {host_url}. "
                "Is the dockyard daemon running?"
            )
        super().__init__(message)
        self.host_url = host_url
        self.reason = reason


class ProtocolError(DockyardError):
    """The daemon sent something that is not the HTTP we expect."""
