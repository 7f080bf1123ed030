"""A container's start trace: every process's part, on one clock.

Four processes take part in a `dockyard run`: the CLI, the daemon, the
container's monitor and its init. Each records its side on CLOCK_MONOTONIC
(perf_counter_ns on Linux, shared by every process of the host):

- the CLI, the instants of its requests (sent with the start request, in the
  X-Dockyard-Client-Timing header);
- the daemon, the API request and its own steps (`StartTimeline`), and the
  kernel calls of the network driver;
- the monitor and the init, their phases and kernel calls (start-trace.json in
  the bundle, written by the monitor after the start).

`assemble` puts them together; `to_perfetto` renders the Chrome/Perfetto
trace-event JSON (one track per process, slices nested by time).
"""

from __future__ import annotations

import json
import os
import re
from time import perf_counter_ns
from typing import Any

from dockyard.errors import NotFound

# The CLI's header: "pid=123;main=T;create=T1-T2;start=T3" (ns on the monotonic clock).
CLIENT_TIMING_HEADER = "X-Dockyard-Client-Timing"
_CLIENT_FIELD = re.compile(r"^(pid|main|create|start|attach)=(\d{1,20})(?:-(\d{1,20}))?$")
_CLIENT_STEPS = {
    "main": "dockyard run: flags, imports, connection",
    "create": "POST /containers/create",
    "attach": "POST /containers/{id}/attach",
    "start": "POST /containers/{id}/start sent",
}
# A client clock more than this far from ours is another host's (a TCP client): ignored.
_CLIENT_SKEW_NS = 120 * 10**9


class StartTimeline:
    """The daemon's steps of one start: each `mark` ends the step begun at the last."""

    __slots__ = ("begin", "steps", "_last")

    def __init__(self) -> None:
        self.begin = self._last = perf_counter_ns()
        self.steps: list[tuple[str, int, int]] = []  # (name, start ns, duration ns)

    def mark(self, name: str) -> None:
        now = perf_counter_ns()
        self.steps.append((name, self._last, now - self._last))
        self._last = now


def parse_client_timing(header: str | None, now: int) -> dict[str, Any]:
    """The CLI's instants from its header; {} when absent, malformed, or not our clock."""
    if not header or len(header) > 400:
        return {}
    out: dict[str, Any] = {}
    for part in header.split(";"):
        m = _CLIENT_FIELD.match(part.strip())
        if m is None:
            return {}
        key, a, b = m.group(1), int(m.group(2)), m.group(3)
        if key == "pid":
            out["pid"] = a
            continue
        if not now - _CLIENT_SKEW_NS < a <= now:
            return {}
        end = int(b) if b is not None else a
        if end < a or end > now:
            return {}
        out[key] = (a, end - a)
    return out


def client_steps(timing: dict[str, Any]) -> list[dict[str, Any]]:
    steps = []
    for key, name in _CLIENT_STEPS.items():
        if key in timing:
            start, ns = timing[key]
            steps.append({"name": name, "start": start, "ns": ns})
    return steps


def calls_of(raw: Any) -> list[dict[str, Any]]:
    """The runtime's calls as the API shows them: {"call", "args", "ns", "start",
    "process"} each, from the file's (call, args, ns, start) arrays by process."""
    if isinstance(raw, list):  # a file from before the arrays: objects already
        return [c for c in raw if isinstance(c, dict)]
    if not isinstance(raw, dict):
        return []
    return [
        {"call": c[0], "args": c[1], "ns": c[2], "start": c[3], "process": process}
        for process, calls in raw.items()
        for c in calls
        if isinstance(c, list) and len(c) == 4
    ]


def read_bundle_trace(bundle: str, ref: str) -> dict[str, Any]:
    try:
        with open(os.path.join(bundle, "start-trace.json")) as f:
            trace = json.load(f)
        if not isinstance(trace, dict):
            raise ValueError("not a JSON object")
        trace["calls"] = calls_of(trace.get("calls"))
        return trace
    except FileNotFoundError:
        from dockyard.kernel.trace import TRACING

        if not TRACING:
            raise NotFound(
                f"No start trace for container {ref}: the daemon runs with "
                "DOCKYARD_START_TRACE=0 (start traces off)"
            ) from None
        raise NotFound(f"No start trace for container {ref}: it has not been started") from None
    except (OSError, ValueError) as e:
        raise NotFound(f"No readable start trace for container {ref}: {e}") from None


def assemble(
    runtime: dict[str, Any],
    network: dict[str, Any] | None,
    daemon: dict[str, Any] | None,
) -> dict[str, Any]:
    """The runtime's trace, with the daemon's share: network calls first, its steps,
    the API request and the CLI's instants (those of the last start since the
    daemon started; after a daemon restart the runtime's part only)."""
    trace = dict(runtime)
    if network is not None:
        # The daemon's share before the runtime's: the namespace, veth, address and
        # ports (no call at all when a spare sandbox was ready), the hosts file.
        trace["calls"] = list(network.get("calls") or []) + list(trace.get("calls") or [])
        trace.setdefault("phases", {})["network_ns"] = int(network.get("ns") or 0)
    if daemon is not None:
        trace["daemon"] = [
            {"name": name, "start": start, "ns": ns} for name, start, ns in daemon["steps"]
        ]
        pids = dict(trace.get("pids") or {})
        pids["daemon"] = daemon["pid"]
        if daemon.get("request"):
            trace["request"] = daemon["request"]
        client = daemon.get("client") or {}
        if client:
            trace["client"] = client_steps(client)
            if "pid" in client:
                pids["cli"] = client["pid"]
        trace["pids"] = pids
    return trace


# --- Chrome / Perfetto trace-event JSON -----------------------------------------

_TRACKS = [
    ("cli", "dockyard CLI"),
    ("daemon", "dockyard daemon"),
    ("monitor", "container monitor"),
    ("init", "container init"),
]


def _args_text(args: list[Any]) -> str:
    text = " ".join(str(a) for a in args)
    return text if len(text) <= 300 else text[:299] + "…"


def to_perfetto(trace: dict[str, Any]) -> dict[str, Any]:
    """The trace-event format (JSON object form): complete events ("ph": "X") in
    microseconds from the first instant, one process track each for the CLI, the
    daemon, the monitor and the init, named by metadata events."""
    pids = dict(trace.get("pids") or {})
    marks = trace.get("marks") or {}
    phases = trace.get("phases") or {}
    # Tracks without a known pid get stand-ins that cannot be a real pid (> pid_max).
    fake = {
        "cli": 1 << 23,
        "daemon": (1 << 23) + 1,
        "monitor": (1 << 23) + 2,
        "init": (1 << 23) + 3,
    }
    pid_of = {k: int(pids.get(k) or fake[k]) for k, _ in _TRACKS}
    slices: list[tuple[str, str, str, int, int, dict[str, Any]]] = []  # track, name, cat, t, ns

    def add(track: str, name: str, cat: str, start: int, ns: int, args: dict | None = None) -> None:
        if start > 0 and ns >= 0:
            slices.append((track, name, cat, start, ns, args or {}))

    for step in trace.get("client") or []:
        add("cli", step["name"], "cli", step["start"], step["ns"])
    request = trace.get("request")
    if request:
        add("daemon", request["name"], "api", request["start"], request["ns"])
    for step in trace.get("daemon") or []:
        add("daemon", step["name"], "engine", step["start"], step["ns"])
    if marks.get("request"):
        # Inside the daemon's "monitor asked" step: the instant the request left.
        add("daemon", "request sent to the monitor", "engine", marks["request"], 0)
    t0, fork, started = marks.get("monitor_start", 0), marks.get("fork", 0), marks.get("started", 0)
    if t0 and started:
        add("monitor", "monitor: set up, fork, wait for exec", "runtime", t0, started - t0)
    if t0 and fork:
        add("monitor", "setup: pipes, cgroups, log", "runtime", t0, fork - t0)
    if fork and started:
        add("monitor", "fork of init to started", "runtime", fork, started - fork)
    init_start = marks.get("init_start", 0)
    if init_start:
        add(
            "init",
            "init until exec: namespaces, mounts, pivot_root, capabilities",
            "runtime",
            init_start,
            int(phases.get("init_until_exec_ns") or 0),
        )
    for call in trace.get("calls") or []:
        track = call.get("process") or "daemon"
        if track in pid_of and call.get("start"):
            add(
                track,
                call.get("call", "?"),
                "kernel",
                int(call["start"]),
                int(call.get("ns") or 0),
                {"args": _args_text(call.get("args") or [])},
            )
    if not slices:
        return {"traceEvents": [], "displayTimeUnit": "ms"}
    base = min(s[3] for s in slices)
    events: list[dict[str, Any]] = []
    used = {s[0] for s in slices}
    for index, (track, label) in enumerate(_TRACKS):
        if track not in used:
            continue
        pid = pid_of[track]
        shown = f"{label} (pid {pids[track]})" if pids.get(track) else label
        events.append(
            {"ph": "M", "name": "process_name", "pid": pid, "tid": pid, "args": {"name": shown}}
        )
        events.append(
            {
                "ph": "M",
                "name": "process_sort_index",
                "pid": pid,
                "tid": pid,
                "args": {"sort_index": index},
            }
        )
        events.append(
            {"ph": "M", "name": "thread_name", "pid": pid, "tid": pid, "args": {"name": track}}
        )
    # Longer first at the same instant: an enclosing slice opens before what it holds.
    for track, name, cat, start, ns, args in sorted(slices, key=lambda s: (s[3], -s[4])):
        pid = pid_of[track]
        events.append(
            {
                "name": name,
                "cat": cat,
                "ph": "X",
                "ts": (start - base) / 1000,
                "dur": ns / 1000,
                "pid": pid,
                "tid": pid,
                "args": args,
            }
        )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "container": trace.get("Id", ""),
            "command": " ".join(trace.get("Command") or []),
            "clock": "CLOCK_MONOTONIC; ts 0 is the first recorded instant",
            "clock_base_ns": base,
        },
    }
