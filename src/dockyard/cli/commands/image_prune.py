"""`dockyard image prune`: remove dangling images (-a: every image no container uses)."""

from __future__ import annotations

import sys

from dockyard.cli.context import Context, parse_filters
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

    from dockyard.client.transport import Client

COMMAND = Command(
    name="prune",
    usage="[OPTIONS]",
    description="Remove unused images",
    options=[
        Opt("all", "a", help="Remove all unused images, not just dangling ones"),
        Opt("filter", kind="list", metavar="filter", help='Provide filter values (e.g. "until=<timestamp>")'),
        Opt("force", "f", help="Do not prompt for confirmation"),
    ],
    aliases=["image prune"],
    max_args=0,
)  # fmt: skip

WARNING_DANGLING = "WARNING! This will remove all dangling images."
WARNING_ALL = (
    "WARNING! This will remove all images without at least one container associated to them."
)


def run_prune(client: Client, all_: bool, filters: dict[str, list[str]]) -> tuple[int, str]:
    """POST /images/prune; (space reclaimed, docker's report of what went)."""
    from dockyard.client.transport import encode_filters

    filters = {**filters, "dangling": ["false" if all_ else "true"]}
    result = client.post("/images/prune", {"filters": encode_filters(filters)}) or {}
    lines = []
    for item in result.get("ImagesDeleted") or []:
        if item.get("Untagged"):
            lines.append(f"untagged: {item['Untagged']}\n")
        else:
            lines.append(f"deleted: {item.get('Deleted', '')}\n")
    report = "Deleted Images:\n" + "".join(lines) if lines else ""
    return int(result.get("SpaceReclaimed") or 0), report


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.formatting import human_size

    if not opts["force"]:
        warning = WARNING_ALL if opts["all"] else WARNING_DANGLING
        ctx.out(warning + "\nAre you sure you want to continue? [y/N] ")
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            ctx.out("Total reclaimed space: 0B\n")
            return 0
    reclaimed, report = run_prune(ctx.client, opts["all"], parse_filters(opts["filter"]))
    if report:
        ctx.out(report + "\n")
    ctx.out(f"Total reclaimed space: {human_size(reclaimed, 4)}\n")
    return 0
