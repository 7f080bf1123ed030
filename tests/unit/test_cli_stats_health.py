"""docker stats' row formatting and the --health-* flags as the docker CLI builds them."""

from __future__ import annotations

import pytest

from dockyard.cli.commands.containeropts import _healthcheck, go_duration_ns
from dockyard.cli.commands.events import fixed_time, line, timestamp
from dockyard.cli.commands.stats import stats_row
from dockyard.cli.context import CLIError


def sample(**over):
    s = {
        "id": "a" * 64, "name": "/web", "read": "2026-01-01T00:00:01Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 20_000_000_000, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000}, "system_cpu_usage": 10_000_000_000},
        "memory_stats": {"usage": 10 * 2**20, "limit": 2**30, "stats": {"total_inactive_file": 2 * 2**20}},
        "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 0}, "eth1": {"rx_bytes": 500, "tx_bytes": 10}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 8, "minor": 0, "op": "read", "value": 4096},
            {"major": 8, "minor": 0, "op": "write", "value": 1_000_000},
        ]},
        "pids_stats": {"current": 3},
    }  # fmt: skip
    s.update(over)
    return s


def test_stats_row_as_docker_computes_it():
    row = stats_row("web", sample(), trunc=True)
    assert row == {
        "Container": "web", "ID": "a" * 12, "Name": "web",
        "CPUPerc": "20.00%",  # 1s of 10s system time, times 2 cpus
        "MemUsage": "8MiB / 1GiB",  # inactive file pages do not count
        "MemPerc": "0.78%",
        "NetIO": "2kB / 10B", "BlockIO": "4.1kB / 1MB", "PIDs": "3",
    }  # fmt: skip


def test_stats_row_of_a_stopped_container():
    row = stats_row("web", {"id": "b" * 64, "name": "/web", "read": "0001-01-01T00:00:00Z"}, True)
    assert row["CPUPerc"] == "--" and row["MemUsage"] == "-- / --" and row["PIDs"] == "--"


def opts(**over):
    base = {"health_cmd": "", "health_interval": "", "health_timeout": "", "health_start_period": "",
            "health_start_interval": "", "health_retries": 0, "no_healthcheck": False}  # fmt: skip
    base.update(over)
    return base


def test_health_flags():
    assert _healthcheck(opts()) is None
    assert _healthcheck(opts(no_healthcheck=True)) == {"Test": ["NONE"]}
    assert _healthcheck(opts(health_cmd="curl x", health_interval="1m30s", health_retries=2)) == {
        "Test": ["CMD-SHELL", "curl x"], "Interval": 90 * 10**9, "Retries": 2,
    }  # fmt: skip
    # only an interval: the image's command stays (empty Test is merged by the daemon)
    assert _healthcheck(opts(health_timeout="500ms")) == {"Test": [], "Timeout": 500_000_000}
    with pytest.raises(CLIError, match="conflicts"):
        _healthcheck(opts(no_healthcheck=True, health_cmd="true"))
    with pytest.raises(CLIError, match="cannot be negative"):
        _healthcheck(opts(health_retries=-1))


@pytest.mark.parametrize("bad", ["10", "1x", "s", "1h-5m", ""])
def test_bad_durations(bad):
    if bad == "":
        assert _healthcheck(opts(health_interval=bad)) is None
        return
    with pytest.raises(CLIError, match="invalid duration"):
        go_duration_ns(bad, "health-interval")


def test_events_time_arguments_and_line():
    assert timestamp("10m", now=1000.0) == "400.000000000"
    assert timestamp("1700000000.5") == "1700000000.5"
    assert timestamp("2026-01-01T00:00:00Z") == "1767225600.000000000"
    with pytest.raises(CLIError):
        timestamp("yesterday")
    msg = {"Type": "container", "Action": "die", "timeNano": 5,
           "Actor": {"ID": "abc", "Attributes": {"name": "w", "exitCode": "0"}}}  # fmt: skip
    assert line(msg).endswith(" container die abc (exitCode=0, name=w)\n")
    assert fixed_time(1_700_000_000_000_000_005)[19:29] == ".000000005"
