"""`dockyard load`: load images from a tar archive (docker save format, OCI layout)."""

from __future__ import annotations

import os
import sys

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import IO, Any

COMMAND = Command(
    name="load",
    usage="[OPTIONS]",
    description="Load an image from a tar archive or STDIN",
    options=[
        Opt("input", "i", kind="string", help="Read from tar archive file, instead of STDIN"),
        Opt("quiet", "q", help="Suppress the load output"),
    ],
    aliases=["image load", "load"],
    max_args=0,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli import progress

    source = opts["input"]
    data: IO[bytes]
    if source:
        try:
            data = open(source, "rb")  # noqa: SIM115 - closed below, streamed as the body
        except OSError as exc:
            reason = exc.strerror.lower() if exc.strerror else str(exc)
            raise CLIError(f"open {source}: {reason}", 1) from None
    else:
        if os.isatty(sys.stdin.fileno()):
            raise CLIError(
                "requested load from stdin, but stdin is empty",
                1,
            )
        data = sys.stdin.buffer
    try:
        terminal = os.isatty(sys.stdout.fileno())
        resp = ctx.client.request(
            "POST",
            "/images/load",
            # As docker: layer progress only for a terminal.
            {"quiet": opts["quiet"] or not terminal},
            data=data,
            headers={"Content-Type": "application/x-tar"},
        )
        progress.display(resp.iter_json(), sys.stdout, terminal)
    finally:
        if source:
            data.close()
    return 0
