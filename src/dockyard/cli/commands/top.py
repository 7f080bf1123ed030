"""`dockyard top`: the processes of a container, as `ps` shows them."""

from __future__ import annotations

from dockyard.cli.context import Context
from dockyard.cli.flags import Command

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="top",
    usage="CONTAINER [ps OPTIONS]",
    description="Display the running processes of a container",
    options=[],
    aliases=["container top", "top"],
    min_args=1,
    interspersed=False,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.formatting import align_columns

    query = {"ps_args": " ".join(args[1:])} if len(args) > 1 else None
    result = ctx.client.get(f"/containers/{args[0]}/top", query) or {}
    lines = [list(result.get("Titles") or [])] + [list(p) for p in result.get("Processes") or []]
    # docker's tabwriter: minwidth 20, padding 3
    ctx.out(align_columns(lines, minwidth=20, padding=3))
    return 0
