"""`dockyard ps`: list containers in docker's table (or a --format template)."""

from __future__ import annotations

from dockyard.cli.context import Context, parse_filters
from dockyard.cli.flags import TABLE_FORMAT_HELP, Command, Opt
from dockyard.cli.formatting import (
    Formatter,
    ellipsis,
    format_ports,
    go_quote,
    go_time_string,
    human_size,
    parse_time,
    short_id,
    time_ago,
)

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="ps",
    usage="[OPTIONS]",
    description="List containers",
    options=[
        Opt("all", "a", help="Show all containers (default shows just running)"),
        Opt("filter", "f", kind="list", metavar="filter", help="Filter output based on conditions provided"),
        Opt("format", kind="string", help=TABLE_FORMAT_HELP),
        Opt("last", "n", kind="int", default=-1, help="Show n last created containers (includes all states)"),
        Opt("latest", "l", help="Show the latest created container (includes all states)"),
        Opt("no-trunc", help="Don't truncate output"),
        Opt("quiet", "q", help="Only display container IDs"),
        Opt("size", "s", help="Display total file sizes"),
    ],
    aliases=["container ls", "container list", "container ps", "ps"],
    max_args=0,
)  # fmt: skip

DEFAULT_TABLE = (
    "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)
HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}


def container_row(c: dict[str, Any], trunc: bool, now: float | None = None) -> dict[str, Any]:
    """The fields docker's ps formatter exposes, rendered as docker renders them."""
    cid = str(c.get("Id", ""))
    image = str(c.get("Image", ""))
    if trunc:
        if image.startswith("sha256:"):
            image = short_id(image)
        elif "@" in image:
            image = image.split("@", 1)[0]
    command = str(c.get("Command", ""))
    if trunc:
        command = ellipsis(command, 20)
    names = [n.lstrip("/") for n in c.get("Names") or []]
    if trunc:
        names = [n for n in names if "/" not in n][:1] or names[:1]
    labels = c.get("Labels") or {}
    size = ""
    if "SizeRw" in c or "SizeRootFs" in c:
        size = human_size(float(c.get("SizeRw") or 0))
        if c.get("SizeRootFs"):
            size += f" (virtual {human_size(float(c['SizeRootFs']))})"
    mounts = []
    for m in c.get("Mounts") or []:
        name = m.get("Name") or m.get("Source") or ""
        mounts.append(ellipsis(name, 15) if trunc else name)
    networks = sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    created = parse_time(c.get("Created"))
    return {
        "ID": short_id(cid) if trunc else cid,
        "Image": image,
        "Command": go_quote(command),
        "CreatedAt": go_time_string(created) if created is not None else "",
        "RunningFor": time_ago(c.get("Created"), now),
        "Ports": format_ports(c.get("Ports")),
        "State": str(c.get("State", "")),
        "Status": str(c.get("Status", "")),
        "Size": size,
        "Names": ",".join(names),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Mounts": ",".join(mounts),
        "Networks": ",".join(networks),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")),
    }


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.transport import encode_filters

    fmt = opts["format"] or ""
    want_size = opts["size"] or ".Size" in fmt
    limit = 1 if opts["latest"] else opts["last"]
    query: dict[str, Any] = {
        "all": True if (opts["all"] or limit > 0) else None,
        "limit": limit if limit > 0 else None,
        "size": True if want_size else None,
    }
    filters = parse_filters(opts["filter"])
    if filters:
        query["filters"] = encode_filters(filters)
    containers = ctx.client.get("/containers/json", query) or []
    trunc = not opts["no_trunc"]
    if opts["quiet"]:
        fmt = "{{.ID}}"
    table = DEFAULT_TABLE + ("\t{{.Size}}" if opts["size"] else "")
    rows = [container_row(c, trunc) for c in containers]
    ctx.out(Formatter(fmt, table, HEADERS).render(rows))
    return 0
