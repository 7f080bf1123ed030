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
    usage="[OPTIONS] CONTAINER | --diff CONTAINER CONTAINER",
    description="Show the system calls and phases of a container's last start, with their durations",
    options=[
        Opt("top", kind="string", default="0", help="Show only the N slowest calls (0: all, in order)"),
        Opt("json", help="Print the raw trace as JSON"),
        Opt("format", kind="string", default="table", help='"table", "json", or "perfetto" (Chrome/Perfetto trace-event JSON, for ui.perfetto.dev)'),
        Opt("diff", help="Compare the last starts of two containers, step by step"),
    ],
    aliases=["container trace", "trace"],
    min_args=1,
    max_args=2,
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


def _get(ctx: Context, ref: str, fmt: str = "dockyard") -> dict[str, Any]:
    from dockyard.cli.context import CLIError
    from dockyard.client.errors import APIError

    query = {"format": fmt} if fmt != "dockyard" else None
    try:
        return ctx.client.request("GET", f"/containers/{ref}/trace", query).json() or {}
    except APIError as exc:
        raise CLIError(f"Error response from daemon: {exc.message}", 1) from None


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    import json

    from dockyard.cli.context import CLIError

    fmt = opts.get("format") or "table"
    if fmt not in ("table", "json", "perfetto"):
        raise CLIError(f'invalid --format "{fmt}": "table", "json" or "perfetto"', 1)
    if opts.get("json"):
        if fmt == "perfetto":
            raise CLIError("--json and --format perfetto: choose one", 1)
        fmt = "json"
    top = opts.get("top") or "0"
    if not top.isdigit():
        raise CLIError(f'invalid --top "{top}": a number of calls', 1)
    if top != "0" and (fmt != "table" or opts.get("diff")):
        raise CLIError("--top applies to the table of one start", 1)
    if opts.get("diff"):
        if len(args) != 2:
            raise CLIError('"dockyard trace --diff" takes two containers', 1)
        if fmt != "table" or opts.get("json"):
            raise CLIError("--diff prints a table: it takes no --format or --json", 1)
        _diff(ctx, _get(ctx, args[0]), _get(ctx, args[1]), args)
        return 0
    if len(args) != 1:
        raise CLIError('"dockyard trace" takes one container (two with --diff)', 1)
    if fmt == "perfetto":
        ctx.out(json.dumps(_get(ctx, args[0], "perfetto")) + "\n")
        return 0
    trace = _get(ctx, args[0])
    if fmt == "json":
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
    count = int(top)
    shown = sorted(calls, key=lambda c: -c.get("ns", 0))[:count] if count > 0 else calls
    rows = [["CALL", "PROCESS", "MS", "ARGUMENTS"]]
    rows += [
        [c.get("call", ""), c.get("process", ""), _ms(c.get("ns", 0)), _args(c.get("args") or [])]
        for c in shown
    ]
    total = sum(c.get("ns", 0) for c in calls)
    ctx.out(tabwrite(rows))
    ctx.out(f"\n{len(calls)} calls, {_ms(total)} ms inside the kernel interface\n")
    return 0


def _steps(trace: dict[str, Any]) -> list[tuple[str, int]]:
    """(step, ns) of a start in order: the daemon's steps, the phases, then every call
    (the n-th call of a name in a process is one step, so two starts line up)."""
    out = [("daemon: " + s["name"], int(s.get("ns") or 0)) for s in trace.get("daemon") or []]
    phases = trace.get("phases") or {}
    out += [(label, int(phases[key])) for key, label in _PHASES if key in phases]
    seen: dict[tuple[str, str], int] = {}
    for c in trace.get("calls") or []:
        key = (c.get("process", ""), c.get("call", ""))
        seen[key] = seen.get(key, 0) + 1
        out.append((f"{key[0]}: {key[1]} #{seen[key]}", int(c.get("ns") or 0)))
    return out


def _diff(ctx: Context, a: dict[str, Any], b: dict[str, Any], names: list[str]) -> None:
    from dockyard.cli.gotemplate import tabwrite

    sa, sb = _steps(a), dict(_steps(b))
    rows = [["STEP", f"A: {names[0][:12]} MS", f"B: {names[1][:12]} MS", "B - A MS"]]
    done = set()
    for step, ns in sa:
        other = sb.get(step)
        done.add(step)
        rows.append(
            [step, _ms(ns), "-" if other is None else _ms(other),
             "only in A" if other is None else f"{(other - ns) / 1e6:+.3f}"]
        )  # fmt: skip
    for step, ns in _steps(b):
        if step not in done:
            rows.append([step, "-", _ms(ns), "only in B"])
    ctx.out(tabwrite(rows) + "\n")
    ta = (a.get("phases") or {}).get("request_to_started_ns")
    tb = (b.get("phases") or {}).get("request_to_started_ns")
    if ta and tb:
        ctx.out(
            f"\nrequest to started: A {_ms(ta)} ms, B {_ms(tb)} ms ({(tb - ta) / 1e6:+.3f} ms)\n"
        )
