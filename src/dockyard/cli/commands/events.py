"""`dockyard events`: the daemon's event stream, printed as `docker events` does."""

from __future__ import annotations

import re
import time

from dockyard.cli.context import CLIError, Context, parse_filters
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="events",
    usage="[OPTIONS]",
    description="Get real time events from the server",
    options=[
        Opt("filter", "f", kind="list", metavar="filter", help="Filter output based on conditions provided"),
        Opt("format", kind="string", help="Format output using a custom template"),
        Opt("since", kind="string", help="Show all events created since timestamp"),
        Opt("until", kind="string", help="Stream events until this timestamp"),
    ],
    aliases=["system events", "events"],
    max_args=0,
)  # fmt: skip

_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def timestamp(value: str, now: float | None = None) -> str:
    """docker's timetypes.GetTimestamp: a Go duration means that long ago; a number
    passes as is; an RFC 3339 time or date becomes unix seconds."""
    now = time.time() if now is None else now
    if _DURATION.match(value):
        ago = sum(float(n) * _UNIT[u] for n, u in _PART.findall(value))
        return f"{now - ago:.9f}"
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    from datetime import datetime

    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CLIError(
            f'invalid value for "since/until": failed to parse time "{value}"', 1
        ) from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time, as docker reads it
    return f"{dt.timestamp():.9f}"


def fixed_time(time_nano: int) -> str:
    """Go's RFC3339NanoFixed in local time, as docker events prints its first column."""
    secs, frac = divmod(time_nano, 1_000_000_000)
    lt = time.localtime(secs)
    off = lt.tm_gmtoff or 0
    zone = (
        "Z"
        if off == 0
        else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    )
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f".{frac:09d}" + zone


def line(ev: dict[str, Any]) -> str:
    actor = ev.get("Actor") or {}
    out = f"{fixed_time(int(ev.get('timeNano') or 0))} {ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        out += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return out + "\n"


def template_view(ev: dict[str, Any]) -> dict[str, Any]:
    """The Go struct's field names (events.Message) for --format."""
    actor = ev.get("Actor") or {}
    return {
        "Status": ev.get("status", ""),
        "ID": ev.get("id", ""),
        "From": ev.get("from", ""),
        "Type": ev.get("Type", ""),
        "Action": ev.get("Action", ""),
        "Actor": {"ID": actor.get("ID", ""), "Attributes": actor.get("Attributes") or {}},
        "Scope": ev.get("scope", ""),
        "Time": ev.get("time", 0),
        "TimeNano": ev.get("timeNano", 0),
    }


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.transport import encode_filters

    query: dict[str, Any] = {}
    if opts["since"]:
        query["since"] = timestamp(opts["since"])
    if opts["until"]:
        query["until"] = timestamp(opts["until"])
    filters = parse_filters(opts["filter"])
    if filters:
        query["filters"] = encode_filters(filters)
    fmt = opts["format"] or ""
    render = None
    if fmt.strip() == "{{json .}}":
        import json

        def render(ev: dict[str, Any]) -> str:
            return json.dumps(ev, separators=(",", ":")) + "\n"

    elif fmt:
        from dockyard.cli import gotemplate

        try:
            template = gotemplate.compile_template(fmt)
        except gotemplate.TemplateError as exc:
            raise CLIError(str(exc), 1) from None

        def render(ev: dict[str, Any]) -> str:
            return template.execute(template_view(ev)) + "\n"

    resp = ctx.client.request("GET", "/events", query)
    try:
        for ev in resp.iter_json():
            ctx.out(render(ev) if render else line(ev))
    except KeyboardInterrupt:
        return 0
    return 0
