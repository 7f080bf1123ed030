"""`dockyard history`: an image's layers and the steps that made them, newest first."""

from __future__ import annotations

from dockyard.cli.context import Context
from dockyard.cli.flags import Command, Opt
from dockyard.cli.formatting import Formatter, ellipsis, human_size, short_id, time_ago

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="history",
    usage="[OPTIONS] IMAGE",
    description="Show the history of an image",
    options=[
        Opt("format", kind="string", help="Format output using a custom template"),
        Opt("human", "H", default=True, help="Print sizes and dates in human readable format"),
        Opt("no-trunc", help="Don't truncate output"),
        Opt("platform", kind="string", help="Show history for the given platform (e.g. \"linux/amd64\")"),
        Opt("quiet", "q", help="Only show image IDs"),
    ],
    aliases=["image history", "history"],
    min_args=1,
    max_args=1,
)  # fmt: skip

DEFAULT_TABLE = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}


def rfc3339_local(ts: float) -> str:
    """Go's time.Unix(ts).Format(time.RFC3339): local time, "Z" for UTC."""
    from datetime import datetime

    dt = datetime.fromtimestamp(ts).astimezone()
    off = dt.strftime("%z")
    zone = "Z" if off in ("+0000", "-0000") else f"{off[:3]}:{off[3:]}"
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + zone


def history_row(h: dict[str, Any], trunc: bool, human: bool) -> dict[str, str]:
    """docker's historyContext."""
    created = float(h.get("Created") or 0)
    created_by = str(h.get("CreatedBy") or "").replace("\t", " ")
    size = int(h.get("Size") or 0)
    iid = str(h.get("Id") or "")
    return {
        "ID": short_id(iid) if trunc else iid,
        "CreatedSince": time_ago(created) if human else rfc3339_local(created),
        "CreatedAt": rfc3339_local(created),
        "CreatedBy": ellipsis(created_by, 45) if trunc else created_by,
        "Size": human_size(float(size)) if human else str(size),
        "Comment": str(h.get("Comment") or ""),
    }


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    import json

    query: dict[str, Any] = {}
    if opts["platform"]:
        os_, _, rest = opts["platform"].partition("/")
        arch, _, variant = rest.partition("/")
        doc = {"os": os_, "architecture": arch}
        if variant:
            doc["variant"] = variant
        query["platform"] = json.dumps(doc)
    entries = ctx.client.get(f"/images/{args[0]}/history", query or None) or []
    trunc = not opts["no_trunc"]
    rows = [history_row(h, trunc, opts["human"]) for h in entries]
    fmt = opts["format"] or ""
    if opts["quiet"]:
        fmt = "{{.ID}}"
    ctx.out(Formatter(fmt, DEFAULT_TABLE, HEADERS).render(rows))
    return 0
