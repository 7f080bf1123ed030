"""`dockyard stop`: stop containers (SIGTERM, then SIGKILL after the timeout)."""

from __future__ import annotations

from dockyard.cli.context import Context, for_each
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="stop",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    description="Stop one or more running containers",
    options=[
        Opt("signal", "s", kind="string", help="Signal to send to the container"),
        Opt("time", kind="int", hidden=True),  # docker's deprecated spelling
        Opt("timeout", "t", kind="int", help="Seconds to wait before killing the container"),
    ],
    aliases=["container stop", "stop"],
    min_args=1,
)


def stop_query(opts: dict[str, Any]) -> dict[str, Any]:
    timeout = None
    if "timeout" in opts["_set"]:
        timeout = opts["timeout"]
    elif "time" in opts["_set"]:
        timeout = opts["time"]
    return {"signal": opts["signal"] or None, "t": timeout}


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    query = stop_query(opts)
    return for_each(
        ctx, args, lambda n: ctx.client.request("POST", f"/containers/{n}/stop", query).read()
    )
