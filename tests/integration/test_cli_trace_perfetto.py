"""`dockyard trace --format perfetto` and `--diff`: a start as four processes on one clock."""

from __future__ import annotations

import json
from typing import Any


def check_trace_events(doc: Any) -> dict[int, str]:
    """The trace-event format (JSON object form) as ui.perfetto.dev and chrome://tracing
    read it; returns pid -> process name. Complete events on one thread must nest."""
    assert isinstance(doc, dict) and isinstance(doc["traceEvents"], list)
    names: dict[int, str] = {}
    by_thread: dict[tuple[int, int], list[tuple[float, float, str]]] = {}
    for ev in doc["traceEvents"]:
        assert ev["ph"] in ("X", "M"), ev
        assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int), ev
        assert isinstance(ev["name"], str) and ev["name"], ev
        if ev["ph"] == "M":
            assert isinstance(ev["args"], dict)
            if ev["name"] == "process_name":
                names[ev["pid"]] = ev["args"]["name"]
            continue
        assert isinstance(ev["ts"], int | float) and ev["ts"] >= 0, ev
        assert isinstance(ev["dur"], int | float) and ev["dur"] >= 0, ev
        assert isinstance(ev.get("cat", ""), str) and isinstance(ev.get("args", {}), dict)
        by_thread.setdefault((ev["pid"], ev["tid"]), []).append(
            (ev["ts"], ev["ts"] + ev["dur"], ev["name"])
        )
    eps = 0.002  # the ns -> us conversion rounds
    for track, slices in by_thread.items():
        assert track[0] in names, f"track {track} has no process name"
        open_: list[tuple[float, float, str]] = []
        for start, end, name in sorted(slices, key=lambda s: (s[0], -(s[1] - s[0]))):
            while open_ and open_[-1][1] <= start + eps:
                open_.pop()
            if open_:
                assert end <= open_[-1][1] + eps, f"{name} overlaps {open_[-1][2]} on {track}"
            open_.append((start, end, name))
    return names


def _slices(doc: dict, pid: int, cat: str | None = None) -> list[dict]:
    return [
        e
        for e in doc["traceEvents"]
        if e["ph"] == "X" and e["pid"] == pid and (cat is None or e.get("cat") == cat)
    ]


def test_perfetto_trace_has_every_process_of_a_run_on_one_clock(daemon, dockyard, inspect, unique):
    name = unique("perfetto")
    proc = dockyard("run", "-d", "--name", name, "busybox", "sleep", "30")
    assert proc.returncode == 0, proc.stderr
    try:
        proc = dockyard("trace", "--format", "perfetto", name)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        names = check_trace_events(doc)
        state = inspect(name)["State"]
        by_label = {label.split(" (pid")[0]: pid for pid, label in names.items()}
        assert set(by_label) == {
            "dockyard CLI",
            "dockyard daemon",
            "container monitor",
            "container init",
        }
        # The tracks are the real processes.
        assert by_label["dockyard daemon"] == daemon.proc.pid
        assert by_label["container init"] == state["Pid"]
        cli, dmn = by_label["dockyard CLI"], by_label["dockyard daemon"]
        mon, init = by_label["container monitor"], by_label["container init"]

        # Every kernel call is a slice, on the track of the process that made it.
        init_calls = [e["name"] for e in _slices(doc, init, "kernel")]
        assert {"unshare", "pivot_root", "execve"} - set(init_calls) == {"execve"}
        assert init_calls.index("unshare") < init_calls.index("pivot_root")
        assert "fork" in [e["name"] for e in _slices(doc, mon, "kernel")]
        assert any("pivot_root" in e["name"] for e in _slices(doc, init))

        def one(pid: int, prefix: str) -> dict:
            found = [e for e in _slices(doc, pid) if e["name"].startswith(prefix)]
            assert len(found) == 1, (prefix, [e["name"] for e in _slices(doc, pid)])
            return found[0]

        request = one(dmn, "POST /containers/{id}/start")
        steps = [e["name"] for e in _slices(doc, dmn, "engine")]
        assert steps[0].startswith("network") and steps[-1].startswith("state saved")
        assert any(s.startswith("image resolved") for s in steps)
        assert any(s.startswith("bundle written") for s in steps)
        asked = one(dmn, "monitor asked")
        sent = one(cli, "POST /containers/{id}/start sent")
        monitor = one(mon, "monitor: ")
        until_exec = one(init, "init until exec")
        # One clock: the CLI sends, the daemon receives, asks the monitor, which forks
        # the init, which reaches exec before the monitor reports it started, which is
        # before the daemon answers.
        assert sent["ts"] <= request["ts"]
        assert request["ts"] <= asked["ts"] <= monitor["ts"]
        assert monitor["ts"] < until_exec["ts"]
        end = until_exec["ts"] + until_exec["dur"]
        assert end <= monitor["ts"] + monitor["dur"] + 0.002
        assert monitor["ts"] + monitor["dur"] <= asked["ts"] + asked["dur"] + 0.002
        assert asked["ts"] + asked["dur"] <= request["ts"] + request["dur"] + 0.002
        assert doc["otherData"]["container"] == inspect(name)["Id"]
    finally:
        dockyard("rm", "-f", name)


def test_trace_diff_compares_two_starts_step_by_step(dockyard, unique):
    a, b = unique("diffa"), unique("diffb")
    try:
        assert dockyard("run", "--name", a, "busybox", "true").returncode == 0
        assert dockyard("run", "--name", b, "--network", "none", "busybox", "true").returncode == 0
        proc = dockyard("trace", "--diff", a, b)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0].split()[0] == "STEP" and "B - A MS" in lines[0]
        rows = {line.split("  ")[0]: line for line in lines[1:] if line.strip()}
        # Steps of both starts, side by side, with the difference.
        pivot = rows["init: pivot_root #1"].split()
        assert len(pivot) == 6 and pivot[-1].startswith(("+", "-"))
        assert any(k.startswith("daemon: monitor asked") for k in rows)
        assert "request to started: A " in proc.stdout
    finally:
        dockyard("rm", "-f", a, b)


def test_trace_bad_input_is_refused_clearly(daemon, dockyard, unique):
    name = unique("notstarted")
    assert dockyard("create", "--name", name, "busybox", "true").returncode == 0
    try:
        proc = dockyard("trace", "--format", "perfetto", name)
        assert proc.returncode == 1
        assert "has not been started" in proc.stderr and "Traceback" not in proc.stderr
        proc = dockyard("trace", "--format", "svg", name)
        assert proc.returncode == 1 and "--format" in proc.stderr
        proc = dockyard("trace", "--diff", name)
        assert proc.returncode == 1 and "two containers" in proc.stderr
        for flags in (
            ["--top", "x"],
            ["--top", "3", "--format", "perfetto"],
            ["--json", "--format", "perfetto"],
        ):
            proc = dockyard("trace", *flags, name)
            assert proc.returncode == 1 and proc.stderr.strip(), flags
            assert "Traceback" not in proc.stderr
        proc = dockyard("trace", "no-such-container")
        assert proc.returncode == 1 and "No such container" in proc.stderr
        resp = daemon.request("GET", f"/containers/{name}/trace?format=svg")
        assert resp.status == 400
        assert dockyard("ps").returncode == 0  # the daemon keeps serving
    finally:
        dockyard("rm", "-f", name)
