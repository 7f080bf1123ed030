"""`dockyard pause`: freeze every process of containers (cgroup freezer)."""

from __future__ import annotations

from dockyard.cli.context import Context, for_each
from dockyard.cli.flags import Command

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="pause",
    usage="CONTAINER [CONTAINER...]",
    description="Pause all processes within one or more containers",
    options=[],
    aliases=["container pause", "pause"],
    min_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    return for_each(
        ctx, args, lambda n: ctx.client.request("POST", f"/containers/{n}/pause").read()
    )
