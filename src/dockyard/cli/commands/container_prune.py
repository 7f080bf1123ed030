"""`dockyard container prune`: remove all stopped containers."""

from __future__ import annotations

import sys

from dockyard.cli.context import Context, parse_filters
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="prune",
    usage="[OPTIONS]",
    description="Remove all stopped containers",
    options=[
        Opt("filter", kind="list", metavar="filter", help='Provide filter values (e.g. "until=<timestamp>")'),
        Opt("force", "f", help="Do not prompt for confirmation"),
    ],
    aliases=["container prune"],
    max_args=0,
)  # fmt: skip

WARNING = (
    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.formatting import human_size
    from dockyard.client.transport import encode_filters

    if not opts["force"]:
        ctx.out(WARNING)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            ctx.out("Total reclaimed space: 0B\n")
            return 0
    filters = parse_filters(opts["filter"])
    query = {"filters": encode_filters(filters)} if filters else None
    result = ctx.client.post("/containers/prune", query) or {}
    deleted = result.get("ContainersDeleted") or []
    if deleted:
        ctx.out("Deleted Containers:\n" + "".join(f"{cid}\n" for cid in deleted) + "\n")
    ctx.out(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}\n")
    return 0
