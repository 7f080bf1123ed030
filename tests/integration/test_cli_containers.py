"""Container life cycle through the dockyard CLI: ps, logs, inspect, stop, kill,
restart, wait, rm, create/start, with docker's columns, wording and exit codes."""

from __future__ import annotations

import json
import re
import time

PS_COLUMNS = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]


def columns(header: str) -> list[str]:
    return re.split(r"\s{2,}", header.strip())


def test_ps_columns_and_exited_status(dockyard, unique):
    name = unique("ps")
    assert dockyard("run", "--name", name, "busybox", "sh", "-c", "exit 3").returncode == 3
    proc = dockyard("ps", "-a")
    assert proc.returncode == 0, proc.stderr
    assert columns(proc.stdout.splitlines()[0]) == PS_COLUMNS
    row = [line for line in proc.stdout.splitlines() if line.endswith(name)]
    assert len(row) == 1, proc.stdout
    assert re.match(r"^[0-9a-f]{12} ", row[0])
    assert re.search(
        r"Exited \(3\) (Less than a second|\d+ seconds?|About a minute) ago", row[0]
    ), row[0]
    assert name not in dockyard("ps").stdout


def test_ps_quiet_filter_format(dockyard, unique):
    name = unique("fmt")
    cid = dockyard("create", "--name", name, "busybox", "true").stdout.strip()
    assert re.match(r"^[0-9a-f]{64}$", cid)
    assert cid[:12] in dockyard("ps", "-aq").stdout.split()
    assert cid in dockyard("ps", "-aq", "--no-trunc").stdout.split()
    assert (
        dockyard(
            "ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}} {{.Status}}"
        ).stdout
        == f"{name} Created\n"
    )
    assert dockyard(
        "ps", "-aq", "--filter", "status=created", "--filter", f"name={name}"
    ).stdout.split() == [cid[:12]]
    latest = dockyard("ps", "-l", "--format", "{{.Names}}").stdout.strip()
    assert latest  # -l: the last created container, whatever the other tests made


def test_logs_tail_timestamps(dockyard, unique):
    name = unique("logs")
    proc = dockyard("run", "--name", name, "busybox", "sh", "-c", "echo a; echo b >&2; echo c")
    assert proc.returncode == 0, proc.stderr
    proc = dockyard("logs", name)
    assert proc.stdout == "a\nc\n" and proc.stderr == "b\n"
    # Order between stdout and stderr is not kept (as with dockerd: two pipes),
    # so --tail is checked on one stream only.
    name = unique("tail")
    assert (
        dockyard("run", "--name", name, "busybox", "sh", "-c", "echo a; echo b; echo c").returncode
        == 0
    )
    assert dockyard("logs", "--tail", "1", name).stdout == "c\n"
    assert dockyard("logs", "--tail", "2", name).stdout == "b\nc\n"
    ts = dockyard("logs", "-t", name).stdout.splitlines()
    assert len(ts) == 3
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z a$", ts[0]), ts


def test_logs_follow_ends_with_container(dockyard, unique):
    name = unique("follow")
    assert (
        dockyard(
            "run", "-d", "--name", name, "busybox", "sh", "-c", "echo 1; sleep 1; echo 2"
        ).returncode
        == 0
    )
    proc = dockyard("logs", "-f", name, timeout=30)
    assert proc.stdout == "1\n2\n"


def test_inspect_format_templates(dockyard, unique):
    name = unique("insp")
    assert dockyard("run", "--name", name, "-e", "A=1", "busybox", "true").returncode == 0
    assert dockyard("inspect", "-f", "{{.State.ExitCode}}", name).stdout == "0\n"
    assert dockyard("inspect", "-f", "{{.Name}}", name).stdout == f"/{name}\n"
    cfg = json.loads(dockyard("inspect", "-f", "{{json .Config}}", name).stdout)
    assert cfg["Cmd"] == ["true"] and "A=1" in cfg["Env"]
    assert dockyard("inspect", "-f", "{{index .Config.Cmd 0}}", name).stdout == "true\n"
    out = dockyard("inspect", "-f", "{{range .Config.Env}}{{.}};{{end}}", name).stdout
    assert "A=1;" in out


def test_inspect_unknown(dockyard):
    proc = dockyard("inspect", "no-such-thing-dky")
    assert proc.returncode == 1
    assert "No such" in proc.stderr and "no-such-thing-dky" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_stop_kill_restart_wait(dockyard, unique, inspect):
    name = unique("life")
    assert dockyard("run", "-d", "--name", name, "busybox", "sleep", "30").returncode == 0
    t0 = time.monotonic()
    proc = dockyard("stop", "-t", "1", name)
    assert proc.returncode == 0 and proc.stdout.strip() == name, proc.stderr
    assert time.monotonic() - t0 < 10
    state = inspect(name)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137

    proc = dockyard("restart", "-t", "1", name)
    assert proc.returncode == 0, proc.stderr
    assert inspect(name)["State"]["Running"] is True

    assert dockyard("kill", "-s", "TERM", name).returncode == 0  # PID 1 ignores TERM...
    time.sleep(0.5)
    assert inspect(name)["State"]["Running"] is True
    assert dockyard("kill", "-s", "KILL", name).returncode == 0  # ...not KILL
    assert dockyard("wait", name).stdout.strip() == "137"


def test_sh_traps_term_on_stop(dockyard, unique):
    name = unique("trap")
    script = "trap 'echo bye; exit 5' TERM; echo ready; while true; do sleep 0.1; done"
    assert dockyard("run", "-d", "--name", name, "busybox", "sh", "-c", script).returncode == 0
    deadline = time.monotonic() + 10
    while "ready" not in dockyard("logs", name).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dockyard("stop", "-t", "10", name).returncode == 0
    assert dockyard("wait", name).stdout.strip() == "5"
    assert dockyard("logs", name).stdout == "ready\nbye\n"


def test_rm_running_needs_force(dockyard, unique):
    name = unique("rmf")
    assert dockyard("run", "-d", "--name", name, "busybox", "sleep", "30").returncode == 0
    proc = dockyard("rm", name)
    assert proc.returncode == 1
    assert "running" in proc.stderr and "Traceback" not in proc.stderr
    proc = dockyard("rm", "-f", name)
    assert proc.returncode == 0 and proc.stdout.strip() == name
    assert name not in dockyard("ps", "-a").stdout


def test_create_then_start_attach(dockyard, unique):
    name = unique("cs")
    proc = dockyard("create", "--name", name, "busybox", "echo", "later")
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"{name}\s*$", dockyard("ps", "-a", "--filter", f"name={name}").stdout)
    start = dockyard("start", "-a", name)
    assert start.returncode == 0, start.stderr
    assert start.stdout == "later\n"


def test_name_conflict(dockyard, unique):
    name = unique("same")
    assert dockyard("create", "--name", name, "busybox", "true").returncode == 0
    proc = dockyard("create", "--name", name, "busybox", "true")
    assert proc.returncode != 0
    assert "is already in use" in proc.stderr
    proc = dockyard("run", "--name", name, "busybox", "true")
    assert proc.returncode == 125  # docker: a run that never started
    assert "is already in use" in proc.stderr
