"""top, stats, events, pause/unpause, rename: watching running containers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest


@pytest.fixture
def running(dockyard, unique):
    name = unique("w")
    # a shell that exits on TERM, so that stop is quick
    proc = dockyard(
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    )
    assert proc.returncode == 0, proc.stderr
    yield name
    dockyard("rm", "-f", name)


def test_top_lists_only_the_containers_processes(dockyard, running):
    proc = dockyard("top", running)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    cmds = [line.split(None, 7)[7] for line in lines[1:]]
    assert any(c.startswith("sh -c trap") for c in cmds), cmds
    assert not any("pytest" in c or "dockyard" in c for c in cmds), cmds
    aux = dockyard("top", running, "aux")
    assert aux.stdout.split()[:2] == ["USER", "PID"]


def test_top_of_stopped_container_is_an_error(dockyard, unique):
    name = unique("tstop")
    dockyard("create", "--name", name, "busybox", "true")
    try:
        proc = dockyard("top", name)
        assert proc.returncode == 1
        assert "is not running" in proc.stderr
    finally:
        dockyard("rm", "-f", name)


def test_stats_no_stream_columns_and_values(dockyard, running):
    proc = dockyard("stats", "--no-stream", running)
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()
    assert re.split(r"\s{2,}", header.strip()) == [
        "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS",
    ]  # fmt: skip
    cells = re.split(r"\s{2,}", row.strip())
    assert cells[1] == running
    assert re.fullmatch(r"\d+\.\d\d%", cells[2])
    assert re.fullmatch(r"[\d.]+[KMG]?i?B / [\d.]+[KMGT]iB", cells[3]), cells[3]
    assert int(cells[7]) >= 2  # sh and its sleep


def test_stats_memory_limit_and_format(dockyard, unique):
    name = unique("mem")
    assert (
        dockyard("run", "-d", "--name", name, "-m", "64m", "busybox", "sleep", "60").returncode == 0
    )
    try:
        proc = dockyard("stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}", name)
        assert proc.returncode == 0, proc.stderr
        got_name, usage = proc.stdout.strip().split("|")
        assert got_name == name
        assert usage.endswith("/ 64MiB")
    finally:
        dockyard("rm", "-f", name)


def test_stats_api_one_shot_and_stream(daemon, running):
    import docker

    client = docker.from_env(environment=daemon.env, timeout=60)
    try:
        c = client.containers.get(running)
        s = c.stats(stream=False)
        assert s["name"] == "/" + running
        assert s["memory_stats"]["usage"] > 0
        assert s["precpu_stats"]["cpu_usage"]["total_usage"] > 0  # a real previous sample
        stream = c.stats(decode=True)
        first, second = next(stream), next(stream)
        assert second["precpu_stats"] == first["cpu_stats"]
    finally:
        client.close()


def _freezer_state(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        path = next(line.split(":", 2)[2].strip() for line in f if ":freezer:" in line)
    with open(f"/sys/fs/cgroup/freezer{path}/freezer.state") as f:
        return f.read().strip()


def test_pause_unpause(dockyard, running, inspect):
    assert dockyard("pause", running).returncode == 0
    assert inspect(running)["State"]["Status"] == "paused"
    assert "(Paused)" in dockyard("ps", "--filter", f"name={running}").stdout
    assert _freezer_state(inspect(running)["State"]["Pid"]) == "FROZEN"
    again = dockyard("pause", running)
    assert again.returncode == 1 and "already paused" in again.stderr
    exec_paused = dockyard("exec", running, "true")
    assert exec_paused.returncode == 1
    # dockerd names the container as it was asked for
    assert f"Container {running} is paused, unpause the container before exec" in exec_paused.stderr
    assert dockyard("unpause", running).returncode == 0
    assert inspect(running)["State"]["Status"] == "running"
    assert _freezer_state(inspect(running)["State"]["Pid"]) == "THAWED"
    not_paused = dockyard("unpause", running)
    assert not_paused.returncode == 1 and "is not paused" in not_paused.stderr


def test_stop_of_a_paused_container(dockyard, running, inspect):
    assert dockyard("pause", running).returncode == 0
    proc = dockyard("stop", "-t", "5", running)
    assert proc.returncode == 0, proc.stderr
    st = inspect(running)["State"]
    assert st["Status"] == "exited" and not st["Paused"]


def test_rename(dockyard, running, unique, inspect):
    new = unique("renamed")
    assert dockyard("rename", running, new).returncode == 0
    assert inspect(new)["Name"] == "/" + new
    assert dockyard("inspect", running).returncode == 1
    assert dockyard("rename", new, running).returncode == 0
    bad = dockyard("rename", running, "no/slashes")
    assert bad.returncode == 1 and "Invalid container name" in bad.stderr


def test_rename_to_a_name_in_use_is_a_conflict(dockyard, running, unique):
    other = unique("other")
    dockyard("create", "--name", other, "busybox", "true")
    try:
        proc = dockyard("rename", running, other)
        assert proc.returncode == 1
        assert (
            f'Error when allocating new name: Conflict. The container name "/{other}" is already in use'
            in proc.stderr
        )
    finally:
        dockyard("rm", "-f", other)


def test_events_stream_and_filters(daemon, dockyard, unique):
    name = unique("ev")
    since = f"{time.time():.9f}"
    events = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "events", "--filter", f"container={name}",
         "--format", "{{json .}}"],
        stdout=subprocess.PIPE, env=daemon.env, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        assert dockyard("run", "--name", name, "--label", "k=v", "busybox", "true").returncode == 0
        seen = []
        while len(seen) < 4:
            seen.append(json.loads(events.stdout.readline()))
        assert [e["Action"] for e in seen] == ["create", "attach", "start", "die"]
        die = seen[3]
        assert die["Type"] == "container" and die["status"] == "die"
        assert die["Actor"]["Attributes"]["exitCode"] == "0"
        assert die["Actor"]["Attributes"]["name"] == name
        assert die["Actor"]["Attributes"]["k"] == "v"
        assert die["from"] == "busybox"
        assert die["timeNano"] // 10**9 == die["time"]
    finally:
        events.terminate()
        events.wait()
        dockyard("rm", "-f", name)
    # since/until: past events, then the stream ends by itself
    past = dockyard(
        "events", "--since", since, "--until", f"{time.time():.9f}",
        "--filter", f"container={name}", "--filter", "event=destroy",
    )  # fmt: skip
    assert past.returncode == 0, past.stderr
    lines = past.stdout.splitlines()
    assert len(lines) == 1 and " container destroy " in lines[0] and f"name={name}" in lines[0]
    labelled = dockyard("events", "--since", since, "--until", "0s", "--filter", "label=k=v")
    assert f"name={name}" in labelled.stdout
    nothing = dockyard("events", "--since", since, "--until", "0s", "--filter", "label=k=other")
    assert nothing.stdout == ""


def test_events_bad_filter_is_400(dockyard):
    proc = dockyard("events", "--until", "0s", "--filter", "bogus=1")
    assert proc.returncode == 1
    assert "invalid filter 'bogus'" in proc.stderr


def test_image_events(dockyard, unique):
    since = f"{time.time():.9f}"
    tag = unique("evimg") + ":v1"
    assert dockyard("tag", "busybox", tag).returncode == 0
    assert dockyard("rmi", tag).returncode == 0
    proc = dockyard(
        "events",
        "--since",
        since,
        "--until",
        "0s",
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"tag {tag}",
        "untag " + proc.stdout.splitlines()[1].split()[1],
    ]
    assert proc.stdout.splitlines()[1].split()[1].startswith("sha256:")


def test_diff_added_changed_deleted(dockyard, unique):
    name = unique("diff")
    proc = dockyard(
        "run",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "mkdir /new && touch /new/f && echo x >> /etc/passwd && rm /bin/vi && ln -s /etc/shadow /link",
    )
    assert proc.returncode == 0, proc.stderr
    try:
        out = dockyard("diff", name)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        for want in (
            "A /new",
            "A /new/f",
            "C /etc",
            "C /etc/passwd",
            "C /bin",
            "D /bin/vi",
            "A /link",
        ):
            assert want in lines, (want, lines)
        assert lines == sorted(lines, key=lambda line: line[2:])
    finally:
        dockyard("rm", "-f", name)


def test_container_prune(dockyard, unique):
    keep, gone, running = unique("keep"), unique("gone"), unique("run")
    # Only this test's containers carry this label: the session's others stay.
    mine = "prunetest=" + unique("p")
    made = [
        dockyard("create", "--name", keep, "-l", mine, "-l", "keep=yes", "busybox", "true"),
        dockyard("run", "--name", gone, "-l", mine, "busybox", "sh", "-c", "head -c 100000 /dev/zero > /big"),
        dockyard("run", "-d", "--name", running, "-l", mine, "busybox", "sleep", "60"),
    ]  # fmt: skip
    assert all(p.returncode == 0 for p in made), [p.stderr for p in made]
    gone_id = dockyard("inspect", "--format", "{{.Id}}", gone).stdout.strip()
    try:
        proc = dockyard(
            "container", "prune", "-f", "--filter", f"label={mine}", "--filter", "label!=keep=yes"
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[:3] == ["Deleted Containers:", gone_id, ""]
        total = proc.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"Total reclaimed space: \d+(\.\d+)?kB", total), total
        names = dockyard("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert keep in names and running in names and gone not in names
        bad = dockyard(
            "container", "prune", "-f", "--filter", "nope=1", "--filter", f"label={mine}"
        )
        assert bad.returncode == 1 and "invalid filter" in bad.stderr
    finally:
        dockyard("rm", "-f", keep, gone, running)


def test_network_events(dockyard, unique):
    since = f"{time.time():.9f}"
    name = unique("netev")
    assert dockyard("run", "--name", name, "busybox", "true").returncode == 0
    cid = dockyard("inspect", "--format", "{{.Id}}", name).stdout.strip()
    dockyard("rm", name)
    proc = dockyard(
        "events", "--since", since, "--until", "0s", "--filter", "type=network",
        "--format", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    mine = [line for line in proc.stdout.splitlines() if line.endswith(cid)]
    assert mine == [f"connect bridge {cid}", f"disconnect bridge {cid}"]


@pytest.mark.parametrize("flags", [[], ["-u", "65534"], ["-t"]], ids=["root", "nobody", "tty"])
def test_top_reads_what_ps_ef_shows(daemon, dockyard, unique, flags):
    """Without ps_args the table comes from /proc; it is what the host's `ps -ef`
    (dockerd's default) shows for the same processes, column for column."""
    name = unique("topef")
    proc = dockyard("run", "-d", "--name", name, *flags, "busybox", "sh", "-c",
                    "sleep 3600 & exec sleep 3601")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    try:
        # Until the shell's fork has exec'd sleep (its command line changes then), and
        # until both reads fall in the same second of the processes' lives: C is CPU
        # time over whole seconds of age, so a read on either side of a process's
        # first birthday differs (0 against the init's ticks) without a fault.
        deadline = time.monotonic() + 20
        while True:
            ours = daemon.request("GET", f"/containers/{name}/top").json()
            ps = daemon.request("GET", f"/containers/{name}/top?ps_args=-ef").json()
            cmds = sorted(p[7] for p in ours["Processes"])
            ready = cmds == ["sleep 3600", "sleep 3601"]
            if (ready and ours["Processes"] == ps["Processes"]) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert cmds == ["sleep 3600", "sleep 3601"]
        assert ours["Titles"] == ps["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY",
                                                  "TIME", "CMD"]  # fmt: skip
        assert ours["Processes"] == ps["Processes"]
        assert {p[0] for p in ours["Processes"]} == {"nobody" if "-u" in flags else "root"}
    finally:
        dockyard("rm", "-f", name)


def test_top_with_ps_args_runs_ps_as_dockerd_does(daemon, dockyard, running):
    aux = daemon.request("GET", f"/containers/{running}/top?ps_args=aux").json()
    assert aux["Titles"][:3] == ["USER", "PID", "%CPU"] and aux["Titles"][-1] == "COMMAND"
    assert any(p[-1].startswith("sh -c trap") for p in aux["Processes"])
    comm = daemon.request("GET", f"/containers/{running}/top?ps_args=-o%20pid,comm").json()
    assert comm["Titles"] == ["PID", "COMMAND"] and ["sh"] in [p[1:] for p in comm["Processes"]]
    refused = daemon.request("GET", f"/containers/{running}/top?ps_args=-o%20user=PID")
    assert refused.status == 400 and 'specifying "user=PID" is not allowed' in refused.message
    bad = dockyard("top", running, "--no-such-option")
    assert bad.returncode == 1
    assert "Error running ps: exit status 1: error: unknown gnu long option" in bad.stderr


def test_diff_leaves_out_the_mount_points_of_etc_files(dockyard, unique):
    """dockerd keeps /etc/hosts, /etc/hostname and /etc/resolv.conf in an init layer: a
    container that changed nothing has an empty diff, and one that wrote /etc/motd
    shows /etc and /etc/motd only."""
    quiet, busy = unique("quiet"), unique("busy")
    assert dockyard("run", "--name", quiet, "busybox", "true").returncode == 0
    assert (
        dockyard("run", "--name", busy, "busybox", "sh", "-c", "echo hi > /etc/motd").returncode
        == 0
    )
    try:
        out = dockyard("diff", quiet)
        assert out.returncode == 0 and out.stdout == "", out.stdout + out.stderr
        assert dockyard("diff", busy).stdout.splitlines() == ["C /etc", "A /etc/motd"]
    finally:
        dockyard("rm", quiet, busy)
