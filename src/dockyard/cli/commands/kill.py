"""`dockyard kill`: send a signal (default SIGKILL) to running containers."""

from __future__ import annotations

from dockyard.cli.context import Context, for_each
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="kill",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    description="Kill one or more running containers",
    options=[Opt("signal", "s", kind="string", help="Signal to send to the container")],
    aliases=["container kill", "kill"],
    min_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    query = {"signal": opts["signal"] or None}
    return for_each(
        ctx, args, lambda n: ctx.client.request("POST", f"/containers/{n}/kill", query).read()
    )
