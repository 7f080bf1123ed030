"""`dockyard stats`: live resource usage of containers, in docker's table."""

from __future__ import annotations

import threading

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import TABLE_FORMAT_HELP, Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="stats",
    usage="[OPTIONS] [CONTAINER...]",
    description="Display a live stream of container(s) resource usage statistics",
    options=[
        Opt("all", "a", help="Show all containers (default shows just running)"),
        Opt("format", kind="string", help=TABLE_FORMAT_HELP),
        Opt("no-stream", help="Disable streaming stats and only pull the first result"),
        Opt("no-trunc", help="Do not truncate output"),
    ],
    aliases=["container stats", "stats"],
)  # fmt: skip

DEFAULT_TABLE = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
HEADERS = {
    "Container": "CONTAINER",
    "ID": "CONTAINER ID",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}


def stats_row(shown: str, s: dict[str, Any] | None, trunc: bool) -> dict[str, str]:
    """docker's stats formatter over one StatsResponse (None: not running)."""
    from dockyard.cli.formatting import bytes_size, human_size

    s = s or {}
    cid = s.get("id", "") or shown
    row = {
        "Container": shown,
        "ID": cid[:12] if trunc else cid,
        "Name": (s.get("name") or "--").lstrip("/"),
    }
    if not s.get("read") or s["read"].startswith("0001-"):
        return row | {"CPUPerc": "--", "MemUsage": "-- / --", "MemPerc": "--", "NetIO": "--",
                      "BlockIO": "--", "PIDs": "--"}  # fmt: skip
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
        "total_usage", 0
    )
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or []) or 1
    cpu_pct = cpu_delta / sys_delta * online * 100.0 if cpu_delta > 0 and sys_delta > 0 else 0.0
    mem = s.get("memory_stats") or {}
    usage = mem.get("usage", 0)
    inactive = (mem.get("stats") or {}).get("total_inactive_file")
    if inactive is None:
        inactive = (mem.get("stats") or {}).get("inactive_file")
    if inactive is not None and inactive < usage:
        usage -= inactive
    limit = mem.get("limit", 0)
    mem_pct = usage / limit * 100.0 if limit else 0.0
    rx = sum(n.get("rx_bytes", 0) for n in (s.get("networks") or {}).values())
    tx = sum(n.get("tx_bytes", 0) for n in (s.get("networks") or {}).values())
    blk = (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    read = sum(e.get("value", 0) for e in blk if str(e.get("op", "")).lower() == "read")
    write = sum(e.get("value", 0) for e in blk if str(e.get("op", "")).lower() == "write")
    return row | {
        "CPUPerc": f"{cpu_pct:.2f}%",
        "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
        "MemPerc": f"{mem_pct:.2f}%",
        "NetIO": f"{human_size(rx)} / {human_size(tx)}",
        "BlockIO": f"{human_size(read)} / {human_size(write)}",
        "PIDs": str((s.get("pids_stats") or {}).get("current", 0)),
    }


class _Follower(threading.Thread):
    """One container's stats stream; `latest` is its newest sample."""

    def __init__(self, ctx: Context, name: str, stream: bool) -> None:
        super().__init__(daemon=True)
        self.ctx, self.name, self.stream = ctx, name, stream
        self.latest: dict[str, Any] | None = None
        self.error: str | None = None
        self.done = threading.Event()
        self.first = threading.Event()

    def run(self) -> None:
        from dockyard.client.errors import APIError
        from dockyard.client.transport import Client

        try:
            client = Client(self.ctx.host)  # one connection per stream
            resp = client.request("GET", f"/containers/{self.name}/stats", {"stream": self.stream})
            for sample in resp.iter_json():
                self.latest = sample
                self.first.set()
        except APIError as exc:
            self.error = exc.message
        except Exception as exc:  # noqa: BLE001 - the stream ended with the connection
            self.error = self.error or str(exc)
        finally:
            self.first.set()
            self.done.set()


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.formatting import Formatter

    names = list(args)
    if not names:
        listing = ctx.client.get("/containers/json", {"all": True if opts["all"] else None}) or []
        names = [c["Id"] for c in listing]
    stream = not opts["no_stream"]
    followers = [_Follower(ctx, n, stream) for n in names]
    for f in followers:
        f.start()
    for f in followers:
        f.first.wait()
    errors = [
        f"Error response from daemon: {f.error}" for f in followers if f.error and f.latest is None
    ]
    if args and errors:
        raise CLIError("\n".join(errors), 1)
    formatter = Formatter(opts["format"] or "", DEFAULT_TABLE, HEADERS)
    trunc = not opts["no_trunc"]

    def screen() -> str:
        rows = [stats_row(f.name, f.latest, trunc) for f in followers if f.latest or not args]
        return formatter.render(rows)

    if not stream:
        ctx.out(screen())
        return 0
    import time

    try:
        while True:
            # docker clears the screen and draws the table again each second
            ctx.out("\033[2J\033[H" + screen())
            if args and all(f.done.is_set() for f in followers):
                return 0
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0
