"""`dockyard rmi`: remove images, printing Untagged/Deleted lines."""

from __future__ import annotations

from dockyard.cli.context import Context, for_each
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="rmi",
    usage="[OPTIONS] IMAGE [IMAGE...]",
    description="Remove one or more images",
    options=[
        Opt("force", "f", help="Force removal of the image"),
        Opt("no-prune", help="Do not delete untagged parents"),
    ],
    aliases=["image rm", "image remove", "rmi"],
    min_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    query = {
        "force": True if opts["force"] else None,
        "noprune": True if opts["no_prune"] else None,
    }

    def remove(name: str) -> None:
        items = ctx.client.request("DELETE", f"/images/{name}", query).json() or []
        lines = []
        for item in items:
            if item.get("Untagged"):
                lines.append(f"Untagged: {item['Untagged']}\n")
            if item.get("Deleted"):
                lines.append(f"Deleted: {item['Deleted']}\n")
        ctx.out("".join(lines))

    return for_each(ctx, args, remove, echo=False)
