"""`dockyard volume prune`: remove unused volumes (anonymous ones unless --all)."""

from __future__ import annotations

import sys

from dockyard.cli.context import Context, parse_filters
from dockyard.cli.flags import Command, Opt
from dockyard.cli.formatting import human_size

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="volume prune",
    usage="[OPTIONS]",
    description="Remove unused local volumes",
    options=[
        Opt("all", "a", help="Remove all unused volumes, not just anonymous ones"),
        Opt("filter", kind="list", metavar="filter", help='Provide filter values (e.g. "label=<label>")'),
        Opt("force", "f", help="Do not prompt for confirmation"),
    ],
    max_args=0,
)  # fmt: skip

WARNING = "WARNING! This will remove anonymous local volumes not used by at least one container."
WARNING_ALL = "WARNING! This will remove all local volumes not used by at least one container."


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.transport import encode_filters

    filters = parse_filters(opts["filter"])
    if opts["all"]:
        filters["all"] = ["true"]
    if not opts["force"]:
        ctx.out(
            (WARNING_ALL if opts["all"] else WARNING)
            + "\nAre you sure you want to continue? [y/N] "
        )
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    query = {"filters": encode_filters(filters)} if filters else None
    report = ctx.client.post("/volumes/prune", query) or {}
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        ctx.out("Deleted Volumes:\n" + "".join(n + "\n" for n in deleted) + "\n")
    ctx.out(f"Total reclaimed space: {human_size(float(report.get('SpaceReclaimed') or 0))}\n")
    return 0
