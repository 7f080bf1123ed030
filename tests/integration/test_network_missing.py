"""`run --network nonexist`: as dockerd, the container is created and its start says
the network is not found (exit 125, container left Created). A 404 at create would
make the docker CLI try to pull the image ("Unable to find image ... locally").

The dockerd comparison needs a dockerd that already runs (never started here) with a
busybox image, its socket from DOCKYARD_TEST_DOCKERD_HOST (default
unix:///var/run/docker.sock); it skips, saying so, without one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
DOCKERD = os.environ.get("DOCKYARD_TEST_DOCKERD_HOST", "unix:///var/run/docker.sock")


def _argv(client: str, host: str) -> list[str]:
    if client == "docker":
        if not os.path.exists(DOCKER):
            pytest.skip("no docker CLI")
        return [DOCKER, "-H", host]
    return [sys.executable, "-m", "dockyard", "-H", host]


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL
    )


def _state(argv: list[str], name: str, env: dict[str, str] | None = None) -> str:
    proc = _run([*argv, "inspect", name], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[0]["State"]["Status"]


@pytest.mark.parametrize("client", ["docker", "dockyard"])
def test_run_on_an_unknown_network_fails_at_start_without_a_pull(daemon, unique, client):
    cli = _argv(client, daemon.host)
    name = unique("netmissing")
    net = unique("nonexist")
    try:
        proc = _run([*cli, "run", "--name", name, "--network", net, "busybox", "true"], daemon.env)
        assert proc.returncode == 125, proc
        assert "Unable to find image" not in proc.stderr
        assert f"Error response from daemon: network {net} not found" in proc.stderr
        assert _state(cli, name, daemon.env) == "created"
        # Its next start says the same; it still has not run.
        proc = _run([*cli, "start", name], daemon.env)
        assert proc.returncode != 0
        assert f"Error response from daemon: network {net} not found" in proc.stderr
        assert _state(cli, name, daemon.env) == "created"
        # `network connect` to a network that is not there answers at once.
        proc = _run([*cli, "network", "connect", net, name], daemon.env)
        assert proc.returncode == 1
        assert f"Error response from daemon: network {net} not found" in proc.stderr
        # Once the network exists, the same container starts on it.
        assert _run([*cli, "network", "create", net], daemon.env).returncode == 0
        proc = _run([*cli, "start", "-a", name], daemon.env)
        assert proc.returncode == 0, proc.stderr
        proc = _run([*cli, "inspect", name], daemon.env)
        assert list(json.loads(proc.stdout)[0]["NetworkSettings"]["Networks"]) == [net]
    finally:
        _run([*cli, "rm", "-f", name], daemon.env)
        _run([*cli, "network", "rm", net], daemon.env)


def test_the_docker_cli_prints_what_it_prints_against_dockerd(daemon, unique):
    """The docker CLI's whole stderr and exit code, ours beside dockerd's."""
    docker = _argv("docker", DOCKERD)
    if _run([*docker, "image", "inspect", "busybox"]).returncode != 0:
        pytest.skip(f"no dockerd with a busybox image at {DOCKERD} (DOCKYARD_TEST_DOCKERD_HOST)")
    net = unique("netmissing-nonexist")
    name = unique("netmissing")  # the same in both: the CLI's message names it
    seen = []
    for host, env in ((DOCKERD, None), (daemon.host, daemon.env)):
        cli = _argv("docker", host)
        try:
            run = _run([*cli, "run", "--name", name, "--network", net, "busybox", "true"], env)
            start = _run([*cli, "start", name], env)
            seen.append((run.returncode, run.stderr, start.returncode, start.stderr))
            assert _state(cli, name, env) == "created"
        finally:
            _run([*cli, "rm", "-f", name], env)
    assert seen[0][0] == 125
    assert seen[1] == seen[0]
