"""Monitors name their daemon's data root, so a leak check finds them even orphaned."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import container_cgroups, force_clean, lingering_processes


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_monitors_of_a_killed_daemon_are_caught_and_cleaned(daemon_factory):
    d = daemon_factory()
    d.import_busybox()
    proc = d.dockyard("run", "-d", "--name", "orphan", "busybox", "sleep", "300")
    assert proc.returncode == 0, proc.stderr
    exec_ = d.dockyard("exec", "-d", "orphan", "sleep", "301")
    assert exec_.returncode == 0, exec_.stderr
    info = json.loads(d.dockyard("inspect", "orphan").stdout)[0]
    container = info["State"]["Pid"]
    monitor = _ppid(container)
    deadline = time.monotonic() + 10
    exec_monitors: list[int] = []
    while not exec_monitors and time.monotonic() < deadline:
        exec_monitors = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and b"sleep\x00301" in _read(p / "cmdline")
        ]
    assert exec_monitors, "the exec's process did not show up"
    exec_monitor = _ppid(exec_monitors[0])

    d.kill()  # SIGKILL: nothing shuts the monitors down; they go on, orphaned
    found = lingering_processes(d.base, grace=0)
    assert monitor in found and exec_monitor in found, found
    assert str(d.data_root) in found[monitor]

    # The next daemon on that data root takes them over, and its rm takes them down.
    again = daemon_factory(base=d.base, data_root=d.data_root)
    assert again.dockyard("rm", "-f", "orphan").returncode == 0
    deadline = time.monotonic() + 10
    while any(map(_alive, (monitor, exec_monitor, container))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, (monitor, exec_monitor, container)))


def test_force_clean_kills_the_monitors_of_a_killed_daemon_and_their_cgroups(daemon_factory):
    d = daemon_factory()
    d.import_busybox()
    proc = d.dockyard("run", "-d", "busybox", "sleep", "300")
    assert proc.returncode == 0, proc.stderr
    cid = proc.stdout.strip()
    container = json.loads(d.dockyard("inspect", cid).stdout)[0]["State"]["Pid"]
    monitor = _ppid(container)
    d.kill()
    force_clean(d.base)  # what the fixtures do after a killed daemon
    assert not _alive(monitor) and not _alive(container)
    assert container_cgroups({cid}) == []


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
