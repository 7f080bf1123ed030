"""`dockyard volume create`: create a volume (prints its name)."""

from __future__ import annotations

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="volume create",
    usage="[OPTIONS] [VOLUME]",
    description="Create a volume",
    options=[
        Opt("driver", "d", kind="string", default="local", help="Specify volume driver name"),
        Opt("label", kind="list", help="Set metadata for a volume"),
        Opt("name", kind="string", help="Specify volume name"),
        Opt("opt", "o", kind="list", metavar="map", help="Set driver specific options"),
    ],
    max_args=1,
)  # fmt: skip


def _pairs(items: list[str]) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in items)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    name = opts["name"] or ""
    if args:
        if name and name != args[0]:
            raise CLIError(
                "conflicting options: cannot specify a volume-name through both --name and "
                "as a positional arg",
                1,
            )
        name = args[0]
    body = {
        "Name": name,
        "Driver": opts["driver"] or "local",
        "DriverOpts": _pairs(opts["opt"]),
        "Labels": _pairs(opts["label"]),
    }
    vol = ctx.client.post("/volumes/create", body=body)
    ctx.out(f"{vol['Name']}\n")
    return 0
