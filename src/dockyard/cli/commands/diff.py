"""`dockyard diff`: files a container added (A), changed (C) or deleted (D)."""

from __future__ import annotations

from dockyard.cli.context import Context
from dockyard.cli.flags import Command

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="diff",
    usage="CONTAINER",
    description="Inspect changes to files or directories on a container's filesystem",
    options=[],
    aliases=["container diff", "diff"],
    min_args=1,
    max_args=1,
)

_KINDS = {0: "C", 1: "A", 2: "D"}


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    changes = ctx.client.get(f"/containers/{args[0]}/changes") or []
    ctx.out("".join(f"{_KINDS.get(c.get('Kind'), '?')} {c.get('Path')}\n" for c in changes))
    return 0
