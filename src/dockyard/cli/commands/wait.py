"""`dockyard wait`: block until containers stop, print their exit codes."""

from __future__ import annotations

from dockyard.cli.context import Context, for_each
from dockyard.cli.flags import Command

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="wait",
    usage="CONTAINER [CONTAINER...]",
    description="Block until one or more containers stop, then print their exit codes",
    aliases=["container wait", "wait"],
    min_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    def wait(name: str) -> None:
        data = ctx.client.request("POST", f"/containers/{name}/wait").json() or {}
        ctx.out(f"{data.get('StatusCode', 0)}\n")

    return for_each(ctx, args, wait, echo=False)
