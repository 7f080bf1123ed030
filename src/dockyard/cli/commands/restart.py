"""`dockyard restart`: stop then start containers."""

from __future__ import annotations

from dockyard.cli.commands.stop import stop_query
from dockyard.cli.context import Context, for_each
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="restart",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    description="Restart one or more containers",
    options=[
        Opt("signal", "s", kind="string", help="Signal to send to the container"),
        Opt("time", kind="int", hidden=True),  # docker's deprecated spelling
        Opt("timeout", "t", kind="int", help="Seconds to wait before killing the container"),
    ],
    aliases=["container restart", "restart"],
    min_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    query = stop_query(opts)
    return for_each(
        ctx, args, lambda n: ctx.client.request("POST", f"/containers/{n}/restart", query).read()
    )
