"""`dockyard system prune`: stopped containers, unused networks, dangling images
(-a: unused ones), with --volumes unused anonymous volumes.

As the docker CLI, it calls each resource's prune endpoint in turn, with the
same filters, and adds up what they reclaimed.
"""

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
    description="Remove unused data",
    options=[
        Opt("all", "a", help="Remove all unused images not just dangling ones"),
        Opt("filter", kind="list", metavar="filter", help='Provide filter values (e.g. "label=<key>=<value>")'),
        Opt("force", "f", help="Do not prompt for confirmation"),
        Opt("volumes", help="Prune anonymous volumes"),
    ],
    aliases=["system prune"],
    max_args=0,
)  # fmt: skip


def warning(all_: bool, volumes: bool) -> str:
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    if all_:
        items += ["all images without at least one container associated to them", "all build cache"]
    else:
        items += ["all dangling images", "unused build cache"]
    lines = "".join(f"  - {item}\n" for item in items)
    return f"WARNING! This will remove:\n{lines}\nAre you sure you want to continue? [y/N] "


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.commands.image_prune import run_prune
    from dockyard.cli.formatting import human_size
    from dockyard.client.transport import encode_filters

    if not opts["force"]:
        ctx.out(warning(opts["all"], opts["volumes"]))
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            ctx.out("Total reclaimed space: 0B\n")
            return 0
    filters = parse_filters(opts["filter"])
    query = {"filters": encode_filters(filters)} if filters else None
    reclaimed = 0
    done = ctx.client.post("/containers/prune", query) or {}
    reclaimed += int(done.get("SpaceReclaimed") or 0)
    if done.get("ContainersDeleted"):
        ctx.out(
            "Deleted Containers:\n" + "".join(f"{c}\n" for c in done["ContainersDeleted"]) + "\n"
        )
    done = ctx.client.post("/networks/prune", query) or {}
    if done.get("NetworksDeleted"):
        ctx.out("Deleted Networks:\n" + "".join(f"{n}\n" for n in done["NetworksDeleted"]) + "\n")
    if opts["volumes"]:
        done = ctx.client.post("/volumes/prune", query) or {}
        reclaimed += int(done.get("SpaceReclaimed") or 0)
        if done.get("VolumesDeleted"):
            ctx.out("Deleted Volumes:\n" + "".join(f"{v}\n" for v in done["VolumesDeleted"]) + "\n")
    space, report = run_prune(ctx.client, opts["all"], filters)
    reclaimed += space
    if report:
        ctx.out(report + "\n")
    ctx.out(f"Total reclaimed space: {human_size(reclaimed, 4)}\n")
    return 0
