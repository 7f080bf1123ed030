"""What a running container costs in Dockyard's own processes: under 1 MB PSS.

The issue's bound (conmon costs ~1 MB, containerd's shim ~2.6 MB): the PSS
(/proc/PID/smaps_rollup) of the daemon, the forkserver, its spare and the
monitor host, summed, grows by less than 1 MB per idle container. The
containers' own processes are not counted. With one forked Python monitor
per container (before the monitor host) each cost ~3.6 MB, so this fails.
bench/monitor_memory_bench.py measures the same with 50 containers.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

N = 20
BOUND_KB = 1024


def pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def dockyard_pids(daemon_pid: int) -> list[int]:
    """The daemon and every process below it that runs the daemon's interpreter."""
    exe = os.readlink(f"/proc/{daemon_pid}/exe")
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [daemon_pid]
    while todo:
        pid = todo.pop()
        try:
            if os.readlink(f"/proc/{pid}/exe") == exe:
                found.append(pid)
        except OSError:
            pass
        todo.extend(kids.get(pid, []))
    return found


def total_pss(daemon_pid: int) -> tuple[int, int]:
    pids = dockyard_pids(daemon_pid)
    return sum(pss_kb(p) for p in pids), len(pids)


def test_a_running_container_costs_dockyard_under_1_mb(daemon_factory, unique) -> None:
    d = daemon_factory()
    d.import_busybox()
    warm = d.dockyard("run", "--rm", "--network", "none", "busybox", "true")
    assert warm.returncode == 0, warm.stderr
    time.sleep(0.5)
    assert d.proc is not None
    before, procs_before = total_pss(d.proc.pid)
    names = [unique("mem") for _ in range(N)]
    for name in names:
        started = d.dockyard(
            "run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "600"
        )
        assert started.returncode == 0, started.stderr
    time.sleep(1.0)
    after, procs_after = total_pss(d.proc.pid)
    running = d.dockyard("ps", "-q").stdout.split()
    assert len(running) == N
    per_container = (after - before) / N
    # No process per container either: the monitor host runs them all.
    assert procs_after == procs_before, (procs_before, procs_after)
    assert per_container < BOUND_KB, f"{per_container:.0f} kB PSS per container"
    removed = d.dockyard("rm", "-f", *names)
    assert removed.returncode == 0, removed.stderr


def test_a_daemon_killed_and_restarted_finds_its_containers_in_the_old_host(
    daemon_factory, unique
) -> None:
    """The monitor host outlives the daemon (and its forkserver): the containers
    keep running and logging; the new daemon reattaches to them, and starts new
    containers in a host of its own."""
    d = daemon_factory()
    d.import_busybox()
    name = unique("host")
    started = d.dockyard(
        "run", "-d", "--name", name, "--network", "none", "busybox",
        "sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert d.proc is not None
    old_hosts = set(dockyard_pids(d.proc.pid)) - {d.proc.pid}
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    time.sleep(0.5)
    alive = {p for p in old_hosts if Path(f"/proc/{p}").exists()}
    assert alive, "the monitor host died with the daemon"
    d.start()
    time.sleep(0.5)
    logs = d.dockyard("logs", name).stdout.splitlines()
    assert len(logs) >= 5 and logs[-1].startswith("line ")
    second = d.dockyard("run", "--rm", "--network", "none", "busybox", "echo", "new")
    assert second.stdout == "new\n", second.stderr
    stopped = d.dockyard("rm", "-f", name)
    assert stopped.returncode == 0, stopped.stderr
    # Its last container gone and its daemon too, the old host exits.
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in alive) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{p}").exists() for p in alive)
