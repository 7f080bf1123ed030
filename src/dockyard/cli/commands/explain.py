"""`dockyard explain`: a container built by hand, as a POSIX shell script.

`dockyard explain CONTAINER` prints the script for an existing container;
`dockyard explain run [OPTIONS] IMAGE [COMMAND] [ARG...]` creates the container
`run` would (every run flag checked and acted on as by run), takes its script,
and removes it again, also when the explain fails: it leaves nothing behind (the
script makes a temporary bundle of its own). Not a docker verb.
"""

from __future__ import annotations

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="explain",
    usage="CONTAINER | run [OPTIONS] IMAGE [COMMAND] [ARG...]",
    description="Print a shell script that builds a container by hand, step by step, with why",
    options=[],
    aliases=["container explain", "explain"],
    min_args=1,
    interspersed=False,
)


def _create(ctx: Context, argv: list[str]) -> str:
    from dockyard.cli.commands.containeropts import (
        CONTAINER_OPTIONS,
        build_create_body,
        create_container,
    )
    from dockyard.cli.flags import FlagError, HelpRequested, UsageError, check_args, parse

    spec = Command(
        name="explain run",
        usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
        description="Create a container as run would and print its script",
        options=CONTAINER_OPTIONS,
        min_args=1,
        interspersed=False,
    )
    try:
        opts, args = parse(spec, argv)
        check_args(spec, args)
    except HelpRequested:
        ctx.out(spec.help_text())
        raise CLIError("", 0) from None
    except (FlagError, UsageError) as exc:
        raise CLIError(f"dockyard: {exc}\nSee 'dockyard explain --help'.", 125) from None
    body = build_create_body(opts, args, detach=True)
    return create_container(ctx, opts, body, "dockyard")


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.errors import APIError

    ref = args[0]
    if ref != "run" and len(args) > 1:
        raise CLIError('"dockyard explain" takes one container, or "run" and run\'s arguments', 1)
    made = _create(ctx, args[1:]) if ref == "run" else ""
    try:
        query = {"own_bundle": "1"} if made else None
        answer = ctx.client.request("GET", f"/containers/{made or ref}/explain", query).json() or {}
    except APIError as exc:
        raise CLIError(f"Error response from daemon: {exc.message}", 1) from None
    finally:
        if made:
            _remove(ctx, made)
    ctx.out(answer.get("Script", ""))
    return 0


def _remove(ctx: Context, cid: str) -> None:
    """The container made for the script goes (with its anonymous volumes)."""
    from dockyard.client.errors import APIError

    try:
        ctx.client.request("DELETE", f"/containers/{cid}", {"force": "1", "v": "1"}).read()
    except APIError as exc:
        ctx.err(f"Error removing the container {cid[:12]} made for the script: {exc.message}\n")
