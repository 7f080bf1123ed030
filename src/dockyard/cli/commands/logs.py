"""`dockyard logs`: fetch (and follow) a container's output, demuxed unless it has a TTY."""

from __future__ import annotations

import re
import time
from datetime import datetime

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="logs",
    usage="[OPTIONS] CONTAINER",
    description="Fetch the logs of a container",
    options=[
        Opt("details", help="Show extra details provided to logs"),
        Opt("follow", "f", help="Follow log output"),
        Opt("since", kind="string", help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)'),
        Opt("tail", "n", kind="string", default="all", help="Number of lines to show from the end of the logs"),
        Opt("timestamps", "t", help="Show timestamps"),
        Opt("until", kind="string", help='Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)'),
    ],
    aliases=["container logs", "logs"],
    min_args=1,
    max_args=1,
)  # fmt: skip

_DURATION = re.compile(r"^(?:\d+(?:\.\d*)?(?:ns|us|µs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_SCALE = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def api_timestamp(value: str, now: float | None = None) -> str:
    """docker's timetypes.GetTimestamp: a duration ago, a unix time, or an RFC 3339 date."""
    text = value.strip()
    if not text:
        return ""
    now = time.time() if now is None else now
    if _DURATION.match(text):
        seconds = sum(float(n) * _SCALE[u] for n, u in _DURATION_PART.findall(text))
        ts = now - seconds
        whole = int(ts)
        return f"{whole}.{int(round((ts - whole) * 1e9)):09d}"
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return text
    iso = text[:-1] + "+00:00" if text.endswith("Z") else text
    main, dot, frac = iso.partition(".")
    nanos = "000000000"
    if dot:
        # Whole seconds through fromisoformat (it takes at most microseconds), the
        # fraction as written: to the nanosecond, as docker's, so that `--until` at a
        # log line's own time (`logs -t`) keeps that line.
        digits = re.match(r"\d*", frac).group(0)  # type: ignore[union-attr]
        nanos = digits[:9].ljust(9, "0")
        iso = main + frac[len(digits) :]
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise CLIError(
            f'invalid value for "since": failed to parse value as time or duration: "{value}"', 1
        ) from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # docker reads zoneless times as local time
    return f"{int(dt.timestamp())}.{nanos}"


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.stream import OutputSink, copy_stream

    client = ctx.client
    info = client.get(f"/containers/{args[0]}/json")
    tty = bool((info.get("Config") or {}).get("Tty"))
    query: dict[str, Any] = {
        "stdout": True,
        "stderr": True,
        "since": api_timestamp(opts["since"]) if opts["since"] else None,
        "until": api_timestamp(opts["until"]) if opts["until"] else None,
        "timestamps": True if opts["timestamps"] else None,
        "follow": True if opts["follow"] else None,
        "tail": opts["tail"] if opts["tail"] not in (None, "", "all") else None,
        "details": True if opts["details"] else None,
    }
    resp = client.request("GET", f"/containers/{info['Id']}/logs", query)
    copy_stream(resp.iter_chunks(), OutputSink(), tty)
    return 0
