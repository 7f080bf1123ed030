"""`dockyard volume ls`: list volumes (DRIVER VOLUME NAME)."""

from __future__ import annotations

from dockyard.cli.context import Context, parse_filters
from dockyard.cli.flags import TABLE_FORMAT_HELP, Command, Opt
from dockyard.cli.formatting import Formatter

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="volume ls",
    usage="[OPTIONS]",
    description="List volumes",
    options=[
        Opt("filter", "f", kind="list", metavar="filter", help="Provide filter values (e.g. \"dangling=true\")"),
        Opt("format", kind="string", help=TABLE_FORMAT_HELP),
        Opt("quiet", "q", help="Only display volume names"),
    ],
    max_args=0,
)  # fmt: skip

DEFAULT_TABLE = "{{.Driver}}\t{{.Name}}"
HEADERS = {
    "Driver": "DRIVER",
    "Name": "VOLUME NAME",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Scope": "SCOPE",
    "CreatedAt": "CREATED AT",
}


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.transport import encode_filters

    filters = parse_filters(opts["filter"])
    query = {"filters": encode_filters(filters)} if filters else None
    vols = (ctx.client.get("/volumes", query) or {}).get("Volumes") or []
    if opts["quiet"]:
        ctx.out("".join(v["Name"] + "\n" for v in vols))
        return 0
    rows = [
        {
            "Driver": v.get("Driver", ""),
            "Name": v.get("Name", ""),
            "Mountpoint": v.get("Mountpoint", ""),
            "Labels": ",".join(f"{k}={val}" for k, val in sorted((v.get("Labels") or {}).items())),
            "Scope": v.get("Scope", ""),
            "CreatedAt": v.get("CreatedAt", ""),
        }
        for v in vols
    ]
    ctx.out(Formatter(opts["format"] or "", DEFAULT_TABLE, HEADERS).render(rows))
    return 0
