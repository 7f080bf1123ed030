"""`dockyard trace`: where the milliseconds of a container's last start went.

Every system call the runtime made to start the container, in order, with its
duration and the process that made it (the monitor, or the container's init
before exec), and the phases they add up to. Not a docker verb: it shows what
the 2013 article had to dig out with strace.
"""

from __future__ import annotations

from dockyard.cli.context import Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="trace",
    usage="[OPTIONS] CONTAINER",
    description="Show the system calls and phases of a container's last start, with their durations",
    options=[
        Opt("top", kind="string", default="0", help="Show only the N slowest calls (0: all, in order)"),
        Opt("json", help="Print the raw trace as JSON"),
    ],
    aliases=["container trace", "trace"],
    min_args=1,
    max_args=1,
)  # fmt: skip

_PHASES = [
    ("network_ns", "network, in the daemon (sandbox, address, ports, /etc/hosts)"),
    ("request_to_monitor_ns", "request to monitor (a spare monitor takes it)"),
    ("monitor_setup_ns", "monitor setup (pipes, cgroups, log)"),
    ("init_until_exec_ns", "container init until exec (namespaces, mounts, pivot_root, caps)"),
    ("fork_to_started_ns", "fork of init to started"),
    ("request_to_started_ns", "request to started (total)"),
]


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f}"


def _args(args: list[Any]) -> str:
    text = " ".join(str(a) for a in args)
    return text if len(text) <= 70 else text[:69] + "…"


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    trace = ctx.client.request("GET", f"/containers/{args[0]}/trace").json() or {}
    if opts.get("json"):
        import json

        ctx.out(json.dumps(trace, indent=4) + "\n")
        return 0
    from dockyard.cli.gotemplate import tabwrite

    calls = trace.get("calls") or []
    phases = trace.get("phases") or {}
    ctx.out(f"Container {trace.get('Id', '')[:12]}: {' '.join(trace.get('Command') or [])}\n")
    ctx.out(f"Started at {trace.get('StartedAt', '')}\n\n")
    rows = [["PHASE", "MS"]]
    rows += [[label, _ms(phases[key])] for key, label in _PHASES if key in phases]
    ctx.out(tabwrite(rows) + "\n")
    try:
        top = int(opts.get("top") or 0)
    except ValueError:
        top = 0
    shown = sorted(calls, key=lambda c: -c.get("ns", 0))[:top] if top > 0 else calls
    rows = [["CALL", "PROCESS", "MS", "ARGUMENTS"]]
    rows += [
        [c.get("call", ""), c.get("process", ""), _ms(c.get("ns", 0)), _args(c.get("args") or [])]
        for c in shown
    ]
    total = sum(c.get("ns", 0) for c in calls)
    ctx.out(tabwrite(rows))
    ctx.out(f"\n{len(calls)} calls, {_ms(total)} ms inside the kernel interface\n")
    return 0
