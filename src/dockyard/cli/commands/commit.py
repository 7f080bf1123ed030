"""`dockyard commit`: create a new image from a container's changes."""

from __future__ import annotations

from dockyard.cli.commands.images import split_ref
from dockyard.cli.context import Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="commit",
    usage="[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
    description="Create a new image from a container's changes",
    options=[
        Opt(
            "author",
            "a",
            kind="string",
            help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")',
        ),
        Opt("change", "c", kind="list", help="Apply Dockerfile instruction to the created image"),
        Opt("message", "m", kind="string", help="Commit message"),
        Opt("pause", "p", default=True, help="Pause container during commit"),
    ],
    aliases=["container commit", "commit"],
    min_args=1,
    max_args=2,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    repo, tag = split_ref(args[1]) if len(args) > 1 else ("", "")
    query: dict[str, Any] = {
        "container": args[0],
        "repo": repo or None,
        "tag": tag or None,
        "comment": opts["message"] or None,
        "author": opts["author"] or None,
        "changes": opts["change"] or None,
        "pause": "1" if opts["pause"] else "0",
    }
    answer = ctx.client.request("POST", "/commit", query).json()
    ctx.out(f"{answer['Id']}\n")
    return 0
