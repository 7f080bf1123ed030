"""`dockyard unpause`: thaw paused containers."""

from __future__ import annotations

from dockyard.cli.context import Context, for_each
from dockyard.cli.flags import Command

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="unpause",
    usage="CONTAINER [CONTAINER...]",
    description="Unpause all processes within one or more containers",
    options=[],
    aliases=["container unpause", "unpause"],
    min_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    return for_each(
        ctx, args, lambda n: ctx.client.request("POST", f"/containers/{n}/unpause").read()
    )
