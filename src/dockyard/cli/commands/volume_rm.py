"""`dockyard volume rm`: remove volumes (not while a container uses them)."""

from __future__ import annotations

from dockyard.cli.context import Context, for_each
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="volume rm",
    usage="[OPTIONS] VOLUME [VOLUME...]",
    description="Remove one or more volumes. You cannot remove a volume that is in use by a container.",
    options=[Opt("force", "f", help="Force the removal of one or more volumes")],
    min_args=1,
)  # fmt: skip


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    query = {"force": True if opts["force"] else None}
    return for_each(
        ctx, args, lambda n: ctx.client.request("DELETE", f"/volumes/{n}", query).read()
    )
