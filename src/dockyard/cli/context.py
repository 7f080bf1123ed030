"""What every verb gets: the selected daemon, a lazily built client, output helpers."""

from __future__ import annotations

import sys

from dockyard.client.host import DaemonHost, TLSSettings

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Callable

    from dockyard.client.transport import Client


class CLIError(Exception):
    """Print `message` on stderr (if any) and exit with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Context:
    def __init__(
        self, host: DaemonHost, debug: bool = False, tls: TLSSettings | None = None
    ) -> None:
        self.host = host
        self.debug = debug
        self.config_dir: str | None = None  # --config: docker's client config directory
        self.tls = tls
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from dockyard.client.transport import Client

            self._client = Client(self.host, tls=self.tls)
        return self._client

    @staticmethod
    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    @staticmethod
    def err(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()


def for_each(ctx: Context, names: list[str], op: Callable[[str], object], echo: bool = True) -> int:
    """Apply `op` to every name like docker's multi-container verbs.

    Successes print the name as the user typed it; daemon errors are collected
    and printed at the end, and make the exit status 1.
    """
    from dockyard.client.errors import APIError

    errors: list[str] = []
    for name in names:
        try:
            op(name)
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
            continue
        if echo:
            ctx.out(name + "\n")
    if errors:
        ctx.err("".join(e + "\n" for e in errors))
        return 1
    return 0


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    """`-f key=value` flags into the filter map the API takes."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise CLIError("bad format of filter (expected name=value)", 125)
        out.setdefault(key.strip().lower(), []).append(value)
    return out
