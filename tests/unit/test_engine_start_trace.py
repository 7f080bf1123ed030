"""The start trace's assembly and its Perfetto rendering, without a daemon."""

from __future__ import annotations

import json

from dockyard.engine.start_trace import (
    StartTimeline,
    assemble,
    parse_client_timing,
    to_perfetto,
)

NOW = 10_000_000_000_000


def test_client_timing_is_taken_only_when_well_formed_and_on_our_clock():
    good = (
        f"pid=42;main={NOW - 5000}-{NOW - 100};create={NOW - 4000}-{NOW - 3000};start={NOW - 100}"
    )
    assert parse_client_timing(good, NOW) == {
        "pid": 42,
        "main": (NOW - 5000, 4900),
        "create": (NOW - 4000, 1000),
        "start": (NOW - 100, 0),
    }
    for bad in (
        None,
        "",
        "pid=1;main=abc",  # not a number
        f"pid=1;evil={NOW}",  # unknown field
        f"main={NOW + 10**9}",  # in the future
        f"main={NOW - 10**12}",  # another host's clock (a TCP client)
        f"create={NOW - 10}-{NOW - 20}",  # ends before it starts
        "pid=1;" + "x" * 500,  # too long
        f"main={NOW - 10}\r\nX: y",
    ):
        assert parse_client_timing(bad, NOW) == {}, bad


def test_timeline_marks_consecutive_steps():
    tl = StartTimeline()
    tl.mark("a")
    tl.mark("b")
    (a, a_start, a_ns), (b, b_start, b_ns) = tl.steps
    assert (a, b) == ("a", "b")
    assert a_start == tl.begin and b_start == a_start + a_ns and b_ns >= 0


def _runtime_trace() -> dict:
    return {
        "calls": [
            {"call": "cgroup_create", "args": ["memory", "x"], "ns": 100, "start": 1_100, "process": "monitor"},
            {"call": "fork", "args": [], "ns": 200, "start": 1_600, "process": "monitor"},
            {"call": "unshare", "args": [0x20000], "ns": 50, "start": 1_900, "process": "init"},
            {"call": "pivot_root", "args": [".", "."], "ns": 70, "start": 2_000, "process": "init"},
        ],
        "phases": {"init_until_exec_ns": 400, "request_to_started_ns": 1_800},
        "marks": {"request": 900, "monitor_start": 1_000, "fork": 1_500, "init_start": 1_850, "started": 2_700},
        "pids": {"monitor": 300, "init": 301},
    }  # fmt: skip


def test_perfetto_has_a_track_per_process_and_nested_slices():
    daemon = {
        "pid": 200,
        "steps": [("network", 600, 200), ("monitor asked, container started", 800, 2_000)],
        "request": {"name": "POST /containers/{id}/start", "start": 500, "ns": 2_500},
        "client": {"pid": 100, "main": (100, 350), "start": (450, 0)},
    }
    network = {"ns": 200, "calls": [{"call": "veth_create", "args": [], "ns": 150, "start": 620, "process": "daemon"}]}  # fmt: skip
    trace = assemble(_runtime_trace(), network, daemon)
    assert trace["pids"] == {"monitor": 300, "init": 301, "daemon": 200, "cli": 100}
    assert trace["phases"]["network_ns"] == 200
    doc = json.loads(json.dumps(to_perfetto(trace)))
    names = {
        e["pid"]: e["args"]["name"]
        for e in doc["traceEvents"]
        if e["ph"] == "M" and e["name"] == "process_name"
    }
    assert names == {
        100: "dockyard CLI (pid 100)",
        200: "dockyard daemon (pid 200)",
        300: "container monitor (pid 300)",
        301: "container init (pid 301)",
    }
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    # Microseconds from the first instant (the CLI's start).
    assert min(e["ts"] for e in slices) == 0
    veth = next(e for e in slices if e["name"] == "veth_create")
    assert (veth["pid"], veth["ts"], veth["dur"], veth["cat"]) == (200, 0.52, 0.15, "kernel")
    pivot = next(e for e in slices if e["name"] == "pivot_root")
    assert pivot["pid"] == 301 and pivot["args"] == {"args": ". ."}
    # Sorted by start, the enclosing slice first.
    starts = [(e["ts"], -e["dur"]) for e in slices]
    assert starts == sorted(starts)


def test_perfetto_of_a_trace_from_before_a_daemon_restart():
    # The runtime's file only (the daemon's part was in memory): no CLI track, and of
    # the daemon only the instant its request left for the monitor (the monitor's mark).
    doc = to_perfetto(assemble(_runtime_trace(), None, None))
    names = [e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"]
    assert names == [
        "dockyard daemon",
        "container monitor (pid 300)",
        "container init (pid 301)",
    ]
    daemon = [e["name"] for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == 1 << 23 | 1]
    assert daemon == ["request sent to the monitor"]
