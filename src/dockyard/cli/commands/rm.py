"""`dockyard rm`: remove containers."""

from __future__ import annotations

from dockyard.cli.context import Context, for_each
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="rm",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    description="Remove one or more containers",
    options=[
        Opt("force", "f", help="Force the removal of a running container (uses SIGKILL)"),
        Opt("link", "l", help="Remove the specified link"),
        Opt("volumes", "v", help="Remove anonymous volumes associated with the container"),
    ],
    aliases=["container rm", "container remove", "rm"],
    min_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    # docker sends only the flags that are set
    query = {
        "v": True if opts["volumes"] else None,
        "link": True if opts["link"] else None,
        "force": True if opts["force"] else None,
    }
    return for_each(
        ctx, args, lambda n: ctx.client.request("DELETE", f"/containers/{n}", query).read()
    )
