"""`dockyard rename`: give a container a new name."""

from __future__ import annotations

from dockyard.cli.context import Context
from dockyard.cli.flags import Command

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="rename",
    usage="CONTAINER NEW_NAME",
    description="Rename a container",
    options=[],
    aliases=["container rename", "rename"],
    min_args=2,
    max_args=2,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    old, new = args
    ctx.client.request("POST", f"/containers/{old}/rename", {"name": new}).read()
    return 0
