"""Health checks: --health-* and image HEALTHCHECKs, as ps, inspect and events show them."""

from __future__ import annotations

import re
import time

import pytest


def _wait_health(inspect, name: str, want: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        h = inspect(name)["State"].get("Health") or {}
        if h.get("Status") == want:
            return h
        if time.monotonic() > deadline:
            pytest.fail(f"health of {name} stayed {h}")
        time.sleep(0.2)


def test_healthy_then_unhealthy(dockyard, unique, inspect):
    name = unique("hc")
    proc = dockyard(
        "run", "-d", "--name", name, "--health-cmd", "test ! -e /tmp/sick && echo fine",
        "--health-interval", "300ms", "--health-retries", "2", "--health-timeout", "5s",
        "busybox", "sleep", "300",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    try:
        assert inspect(name)["Config"]["Healthcheck"] == {
            "Test": ["CMD-SHELL", "test ! -e /tmp/sick && echo fine"],
            "Interval": 300_000_000, "Timeout": 5_000_000_000, "Retries": 2,
        }  # fmt: skip
        h = _wait_health(inspect, name, "healthy")
        assert h["FailingStreak"] == 0
        assert h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "fine\n"
        row = dockyard("ps", "--filter", f"name={name}").stdout.splitlines()[1]
        assert re.search(r"Up .* \(healthy\)", row), row
        assert name in dockyard("ps", "--filter", "health=healthy").stdout
        assert name not in dockyard("ps", "--filter", "health=unhealthy").stdout
        assert dockyard("exec", name, "touch", "/tmp/sick").returncode == 0
        h = _wait_health(inspect, name, "unhealthy")
        assert h["FailingStreak"] >= 2
        assert len(h["Log"]) <= 5
        assert "(unhealthy)" in dockyard("ps", "--filter", f"name={name}").stdout
        events = dockyard(
            "events", "--since", "5m", "--until", "0s", "--filter", f"container={name}",
            "--filter", "event=health_status", "--format", "{{.Action}}",
        ).stdout.split("\n")  # fmt: skip
        assert events[:2] == ["health_status: healthy", "health_status: unhealthy"]
        assert dockyard("kill", name).returncode == 0
        dockyard("wait", name)
        stopped = inspect(name)["State"]
        assert stopped["Health"]["Status"] == "unhealthy"  # kept, as dockerd keeps it
        assert "unhealthy" not in dockyard("ps", "-a", "--filter", f"name={name}").stdout
    finally:
        dockyard("rm", "-f", name)


def test_timeout_counts_as_failure(dockyard, unique, inspect):
    name = unique("hct")
    proc = dockyard(
        "run", "-d", "--name", name, "--health-cmd", "sleep 10", "--health-interval", "200ms",
        "--health-timeout", "300ms", "--health-retries", "1", "busybox", "sleep", "300",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    try:
        h = _wait_health(inspect, name, "unhealthy")
        assert h["Log"][-1]["ExitCode"] == -1
        assert "exceeded timeout" in h["Log"][-1]["Output"]
    finally:
        dockyard("rm", "-f", name)


def test_starting_and_no_healthcheck(dockyard, unique, inspect):
    name = unique("hcs")
    proc = dockyard(
        "run", "-d", "--name", name, "--health-cmd", "true", "--health-interval", "1h",
        "busybox", "sleep", "300",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plain = unique("plain")
    dockyard("run", "-d", "--name", plain, "busybox", "sleep", "300")
    try:
        assert inspect(name)["State"]["Health"]["Status"] == "starting"
        assert "(health: starting)" in dockyard("ps", "--filter", f"name={name}").stdout
        assert "Health" not in inspect(plain)["State"]
        assert plain in dockyard("ps", "--filter", "health=none").stdout
    finally:
        dockyard("rm", "-f", name, plain)


def test_bad_health_flags(dockyard):
    proc = dockyard("run", "--no-healthcheck", "--health-cmd", "true", "busybox", "true")
    assert proc.returncode == 125
    assert "conflicts with --health-*" in proc.stderr
    proc = dockyard("create", "--health-interval", "10x", "busybox", "true")
    assert proc.returncode == 125
    assert "invalid duration" in proc.stderr
    proc = dockyard("create", "--health-cmd", "true", "--health-interval", "1ns", "busybox", "true")
    assert proc.returncode == 125
    assert "cannot be less than 1ms" in proc.stderr


def test_health_survives_a_daemon_restart(daemon_factory, tmp_path):
    d = daemon_factory(extra_args=["--live-restore"])
    d.import_busybox()
    proc = d.dockyard(
        "run", "-d", "--name", "hh", "--health-cmd", "test -e /tmp/ok", "--health-interval", "200ms",
        "--health-retries", "1", "busybox", "sleep", "300",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    try:
        d.stop()
        d.start()
        assert d.dockyard("exec", "hh", "touch", "/tmp/ok").returncode == 0
        deadline = time.monotonic() + 30
        while "(healthy)" not in d.dockyard("ps").stdout:
            assert time.monotonic() < deadline, d.dockyard("inspect", "hh").stdout
            time.sleep(0.2)
    finally:
        d.dockyard("rm", "-f", "hh")
        # A live-restore daemon keeps its bridge at exit: one more start without it
        # lets the fixture's clean shutdown take everything down.
        d.stop()
        daemon_factory(base=d.base, data_root=d.data_root)
