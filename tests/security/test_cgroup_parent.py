"""Attack: a CgroupParent that climbs out of /sys/fs/cgroup/<controller> with "..",
so that the runtime, as root, creates directories (and writes control files)
anywhere on the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "devices", "freezer")


@pytest.mark.parametrize("depth", [2, 4, 6])
def test_dotdot_cgroup_parent_is_refused_and_creates_nothing(daemon, unique, depth) -> None:
    marker = unique("cgparent")
    parent = "../" * depth + f"tmp/{marker}"
    resp = daemon.request(
        "POST",
        "/containers/create",
        {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"CgroupParent": parent}},
    )
    assert resp.status == 400, resp.body
    assert resp.message == (
        f'invalid CgroupParent "{parent}": ".." is not allowed: '
        "the cgroup parent must stay inside the cgroup hierarchy"
    )
    # Wherever the path would have led: nothing made there.
    for controller in CONTROLLERS:
        where = os.path.normpath(f"/sys/fs/cgroup/{controller}/{parent}")
        assert not os.path.exists(where), where
    assert not Path("/tmp", marker).exists()


def test_dotdot_cgroup_parent_through_the_cli(daemon, unique) -> None:
    dockyard = daemon.dockyard
    marker = unique("cgparent")
    proc = dockyard(
        "run", "--rm", "--cgroup-parent", f"../../../../tmp/{marker}", "busybox", "true"
    )
    assert proc.returncode == 125
    assert '".." is not allowed' in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not Path("/tmp", marker).exists()


def test_absolute_cgroup_parent_stays_inside_the_hierarchy(daemon, unique) -> None:
    dockyard = daemon.dockyard
    # As with dockerd's cgroupfs driver, "/x/y" names x/y below each controller's
    # root: not the host directory /x/y.
    top = unique("dky-cgp")
    name = unique("c")
    try:
        proc = dockyard(
            "run", "--name", name, "--cgroup-parent", f"/{top}/x",
            "busybox", "cat", "/proc/self/cgroup",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert not Path("/", top).exists()
        cid = dockyard("inspect", "-f", "{{.Id}}", name).stdout.strip()
        assert f"/{top}/x/{cid}" in proc.stdout
    finally:
        dockyard("rm", "-f", name)
        for controller in CONTROLLERS:  # the parents, as dockerd, outlive the container
            for sub in (f"{top}/x", top):
                path = Path("/sys/fs/cgroup", controller, sub)
                if path.is_dir():
                    path.rmdir()
