"""scripts/cleanup-test-leftovers removes the network of a daemon that was killed
(its bridges and iptables chains), wherever its data root was, and nothing of a
daemon that still runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import REPO, mounts_under

from dockyard.network.bridge import daemon_suffix, default_bridge_name


def _bridges() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir() if (p / "bridge").is_dir()}


def _chains(suffix: str) -> set[str]:
    found = set()
    for table in ("filter", "nat"):
        listing = subprocess.run(
            ["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True, check=True
        ).stdout
        found |= {
            f"{table} {line}"
            for line in listing.splitlines()
            if line.split()[-1].endswith(suffix) or " -j DOCKYARD-" in line and suffix in line
        }
    return found


def _base() -> Path:
    # Not /tmp/dky-*: no owner.pid, not a test run's directory; only its network is
    # the script's business.
    base = Path(tempfile.mkdtemp(prefix="dkyleft-", dir="/tmp"))
    (base / "docker-config").mkdir()
    return base


def test_the_network_of_a_killed_daemon_goes_and_a_running_ones_stays(daemon_factory, unique):
    # (daemon_factory removes both bases at the end)
    bases = [_base(), _base()]
    killed = daemon_factory(base=bases[0])
    running = daemon_factory(base=bases[1])
    net = unique("leftnet")
    assert killed.dockyard("network", "create", net).returncode == 0
    net_id = killed.dockyard("network", "inspect", "-f", "{{.Id}}", net).stdout.strip()
    assert running.dockyard("network", "create", net).returncode == 0
    live_id = running.dockyard("network", "inspect", "-f", "{{.Id}}", net).stdout.strip()
    dead_suffix = daemon_suffix(str(killed.data_root))
    live_suffix = daemon_suffix(str(running.data_root))
    dead_bridges = {default_bridge_name(str(killed.data_root)), f"br-{net_id[:12]}"}
    live_bridges = {default_bridge_name(str(running.data_root)), f"br-{live_id[:12]}"}
    live_chains = _chains(live_suffix)
    # A container on the killed daemon's bridge: its network namespace stays mounted
    # in the data root (the container itself outlives the daemon by design; the
    # fixture ends it).
    killed.import_busybox()
    ran = killed.dockyard("run", "-d", "--network", net, "busybox", "sleep", "600")
    assert ran.returncode == 0, ran.stderr
    killed.kill()  # SIGKILL: it tears nothing down
    namespaces = mounts_under(str(killed.data_root / "run" / "netns"))
    assert namespaces
    # What a killed daemon leaves: the leftovers this script is for.
    assert dead_bridges <= _bridges()
    assert _chains(dead_suffix)
    assert live_chains and live_bridges <= _bridges()

    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "cleanup-test-leftovers")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not dead_bridges & _bridges(), proc.stderr
    assert not _chains(dead_suffix), proc.stderr
    assert not mounts_under(str(killed.data_root / "run" / "netns")), namespaces
    # The running daemon's network is untouched, and it still works.
    assert live_bridges <= _bridges()
    assert _chains(live_suffix) == live_chains
    assert running.dockyard("network", "rm", net).returncode == 0


def _dead_pid() -> int:
    """A pid that no process has now: a child that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_the_cgroups_of_a_killed_test_run_go_and_a_running_ones_stay():
    # What a test run killed before its teardown leaves (test_runtime_launcher names
    # its cgroup parent dockyard-test-<its pid>): a parent with a child cgroup holding
    # a process. The parent of this still-running test process must stay.
    pids_root = Path("/sys/fs/cgroup/pids")
    dead = pids_root / f"dockyard-test-{_dead_pid()}"
    live = pids_root / f"dockyard-test-{os.getpid()}"
    (dead / "ctr").mkdir(parents=True)
    live.mkdir()
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        (dead / "ctr" / "cgroup.procs").write_text(str(sleeper.pid))
        dry = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "cleanup-test-leftovers"), "--dry-run"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert f"would remove the cgroup {dead}" in dry.stderr
        assert dead.is_dir()
        proc = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "cleanup-test-leftovers")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert not dead.exists(), proc.stderr
        assert sleeper.wait(timeout=10) == -9  # its process was killed, not left behind
        assert live.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
        for cg in (dead / "ctr", dead, live):
            if cg.is_dir():
                cg.rmdir()
