"""`dockyard export`: a container's file tree as a tar archive."""

from __future__ import annotations

import os
import sys

from dockyard.cli.commands.save import check_output_dir, write_stream
from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="export",
    usage="[OPTIONS] CONTAINER",
    description="Export a container's filesystem as a tar archive",
    options=[
        Opt("output", "o", kind="string", help="Write to a file, instead of STDOUT"),
    ],
    aliases=["container export", "export"],
    min_args=1,
    max_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    output = opts["output"]
    if not output and os.isatty(sys.stdout.fileno()):
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    check_output_dir(output, "failed to export container")
    resp = ctx.client.request("GET", f"/containers/{args[0]}/export")
    write_stream(resp.iter_chunks(), output)
    return 0
