"""The real docker CLI's expectations of the life cycle: stop of a stopped
container exits 0, kill then rm works, inspect shows LogConfig and Runtime."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.docker_cli


def test_docker_stop_of_a_stopped_container_exits_0(daemon, unique):
    name = unique("dstop")
    assert daemon.docker("run", "--name", name, "busybox", "true").returncode == 0
    proc = daemon.docker("stop", name)
    assert (proc.returncode, proc.stdout) == (0, name + "\n"), proc.stderr
    assert daemon.docker("rm", name).returncode == 0


def test_docker_kill_then_rm(daemon, unique):
    for i in range(5):
        name = unique(f"dkill{i}")
        assert (
            daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "1000").returncode == 0
        )
        assert daemon.docker("kill", name).returncode == 0
        proc = daemon.docker("rm", name)
        assert proc.returncode == 0, (i, proc.stderr)


def test_docker_inspect_log_config_and_runtime(daemon, unique):
    name = unique("dinspect")
    assert daemon.docker("create", "--name", name, "busybox", "true").returncode == 0
    proc = daemon.docker(
        "inspect", "-f", "{{json .HostConfig.LogConfig}} {{.HostConfig.Runtime}}", name
    )
    log_config, runtime = proc.stdout.split(" ")
    assert json.loads(log_config) == {"Type": "json-file", "Config": {}}
    info = daemon.docker("info", "-f", "{{.DefaultRuntime}}").stdout.strip()
    assert runtime.strip() == info == "dockyard"
    assert daemon.docker("rm", name).returncode == 0
