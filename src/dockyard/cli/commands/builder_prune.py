"""`dockyard builder prune`: remove the build cache (the classic builder's intermediate images)."""

from __future__ import annotations

import sys

from dockyard.cli.context import Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="prune",
    usage="[OPTIONS]",
    description="Remove build cache",
    options=[
        Opt("all", "a", help="Remove all unused build cache, not just dangling ones"),
        Opt("force", "f", help="Do not prompt for confirmation"),
    ],
    aliases=["builder prune"],
    max_args=0,
)

WARNING = (
    "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue? [y/N] "
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.formatting import human_size

    if not opts["force"]:
        ctx.out(WARNING)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            ctx.out("Total reclaimed space: 0B\n")
            return 0
    result = ctx.client.post("/build/prune", {"all": "1" if opts["all"] else None}) or {}
    deleted = result.get("CachesDeleted") or []
    if deleted:
        ctx.out("Deleted build cache objects:\n" + "".join(f"{i}\n" for i in deleted) + "\n")
    ctx.out(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}\n")
    return 0
