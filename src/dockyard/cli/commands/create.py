"""`dockyard create`: create a container and print its id."""

from __future__ import annotations

from dockyard.cli.commands.containeropts import (
    CONTAINER_OPTIONS,
    build_create_body,
    create_container,
)
from dockyard.cli.context import Context
from dockyard.cli.flags import Command

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="create",
    usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
    description="Create a new container",
    options=CONTAINER_OPTIONS,
    aliases=["container create", "create"],
    min_args=1,
    interspersed=False,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    body = build_create_body(opts, args)
    cid = create_container(ctx, opts, body, "dockyard")
    ctx.out(cid + "\n")
    return 0
