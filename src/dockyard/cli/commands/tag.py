"""`dockyard tag`: create TARGET_IMAGE that refers to SOURCE_IMAGE."""

from __future__ import annotations

from dockyard.cli.commands.images import split_ref
from dockyard.cli.context import Context
from dockyard.cli.flags import Command

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="tag",
    usage="SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    description="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    aliases=["image tag", "tag"],
    min_args=2,
    max_args=2,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    source, target = args
    repo, tag = split_ref(target)
    ctx.client.request(
        "POST", f"/images/{source}/tag", {"repo": repo, "tag": tag or "latest"}
    ).read()
    return 0
