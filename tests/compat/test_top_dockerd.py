"""`top` beside dockerd's: the same columns and values for the same container.

Needs a dockerd that already runs (never started here) with a busybox image; its
socket from DOCKYARD_TEST_DOCKERD_HOST (default unix:///var/run/docker.sock).
Skips, saying so, without one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

DOCKERD = os.environ.get("DOCKYARD_TEST_DOCKERD_HOST", "unix:///var/run/docker.sock")


def _cli(host: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKYARD_HOST": host}
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args], capture_output=True, text=True,
        timeout=60, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def dockerd() -> str:
    version = _cli(DOCKERD, "version", "--format", "{{.Server.Version}}")
    if version.returncode != 0:
        pytest.skip(f"no dockerd to compare with at {DOCKERD}")
    if _cli(DOCKERD, "image", "inspect", "busybox").returncode != 0:
        pytest.skip(f"the dockerd at {DOCKERD} holds no busybox image (this test pulls nothing)")
    return DOCKERD


def _table(host: str, name: str, *ps_args: str) -> list[list[str]]:
    proc = _cli(host, "top", name, *ps_args)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    width = len(lines[0].split())
    return [line.split(None, width - 1) for line in lines]


def test_top_shows_what_dockerds_top_shows(daemon, dockerd) -> None:
    name = f"cleanup-top-{uuid.uuid4().hex[:8]}"
    hosts = {"dockerd": dockerd, "dockyard": daemon.host}
    try:
        for host in hosts.values():
            ran = _cli(host, "run", "-d", "--name", name, "-u", "65534", "busybox",
                       "sh", "-c", "exec sleep 3601")  # fmt: skip
            assert ran.returncode == 0, ran.stderr
        theirs, ours = (_table(h, name) for h in hosts.values())
        assert ours[0] == theirs[0] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        assert len(ours) == len(theirs) == 2
        # Pids, start times and the CPU share (load) differ; user, terminal, CPU time and
        # command do not.
        for column in ("UID", "TTY", "TIME", "CMD"):
            at = ours[0].index(column)
            assert ours[1][at] == theirs[1][at], column
        for ps_args in (["aux"], ["-o", "pid,comm"]):
            theirs, ours = (_table(h, name, *ps_args) for h in hosts.values())
            assert ours[0] == theirs[0]
            assert ours[1][-1] == theirs[1][-1]  # the command
    finally:
        for host in hosts.values():
            _cli(host, "rm", "-f", name)
