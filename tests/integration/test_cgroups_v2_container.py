"""A whole container on cgroup v2: dockyard-runtime with DOCKYARD_CGROUP_ROOT on
a cgroup2 mount of the test's own.

What this hybrid host allows: a controller belongs to one hierarchy at a time,
and memory, cpu, cpuacct, cpuset, blkio, devices, freezer and pids are bound
to v1 hierarchies that hold cgroups (the kernel moves a controller to v2 only
once its v1 hierarchy is unmounted and empty), so this host's cgroup2 has no
controller in cgroup.controllers, and no test may take them from the other
suites running on it. What v2 does without controllers is real here, on a
container started, paused and stopped through the runtime's v2 path: the
container's own cgroup (its init joins through cgroup.procs), the device
eBPF program (BPF_CGROUP_DEVICE, attached to the cgroup: the only device
control, as nothing touches v1), the freezer (cgroup.freeze), removal at the
end, and every limit refused by name because its controller is missing. The
limit files themselves are checked against a fake cgroupfs
(tests/unit/test_runtime_cgroups_v2.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from tests.integration.test_oci_runtime_cli import Runtime


@pytest.fixture
def v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount cgroup2")
    # Outside tmp_path, whose mounts Runtime counts as leftovers.
    mnt = Path(tempfile.mkdtemp(prefix="dky-cg2-", dir="/tmp"))
    mounted = subprocess.run(
        ["mount", "-t", "cgroup2", "none", str(mnt)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"this kernel does not let us mount cgroup2: {mounted.stderr.strip()}")
    # Every dockyard-runtime command of the test (Runtime passes os.environ on).
    monkeypatch.setenv("DOCKYARD_CGROUP_ROOT", str(mnt))
    parent = f"dky-v2-{uuid.uuid4().hex[:8]}"
    rt = Runtime(tmp_path, unique("v2"))
    rootfs = rt.bundle / "rootfs" / "bin"
    for applet in ("mknod", "head", "wc", "grep"):
        (rootfs / applet).symlink_to("busybox")
    try:
        yield rt, mnt, parent
    finally:
        rt.cleanup_and_check()
        left = (
            [p for p in (mnt / parent).rglob("*") if p.is_dir()] if (mnt / parent).exists() else []
        )
        if (mnt / parent).exists():
            os.rmdir(mnt / parent)
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()
        assert left == [], f"cgroups left: {left}"


def spec_for(rt: Runtime, args: list[str], cgroups_path: str, devices: list | None = None) -> None:
    spec = json.loads((rt.bundle / "config.json").read_text())
    linux = {**spec["linux"], "cgroupsPath": cgroups_path}
    if devices:
        linux["resources"] = {**linux["resources"], "devices": devices}
    rt.config(args, linux=linux)


def test_a_container_runs_in_its_v2_cgroup_with_the_device_program(v2) -> None:
    rt, mnt, parent = v2
    cid = rt.new_id()
    script = (
        "grep '^0::' /proc/self/cgroup; "
        "head -c 3 /dev/zero | wc -c; "
        # A host disk's numbers: only the device program stands between it and us.
        "mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda 2>&1; echo done"
    )
    # Deny all, then mknod (only) of 8:0 (sda): the node can be made, not opened.
    devices = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "m"},
    ]
    spec_for(rt, ["sh", "-c", script], f"{parent}/{cid}", devices)
    run = rt.cli("run", "--bundle", str(rt.bundle), cid)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"0::/{parent}/{cid}"
    assert lines[1].strip() == "3"
    assert "Operation not permitted" in lines[2], (lines, run.stderr)
    assert lines[-1] == "done"
    # Gone with the container.
    assert not (mnt / parent / cid).exists()


def test_pause_resume_and_limits_refused_by_name_on_v2(v2) -> None:
    rt, mnt, parent = v2
    cid = rt.new_id()
    spec_for(rt, ["sleep", "300"], f"{parent}/{cid}")
    assert rt.create(cid).returncode == 0
    assert rt.cli("start", cid).returncode == 0
    cg = mnt / parent / cid
    pid = rt.state(cid)["pid"]
    assert (cg / "cgroup.procs").read_text().split() == [str(pid)]
    assert rt.cli("pause", cid).returncode == 0
    assert "frozen 1" in (cg / "cgroup.events").read_text()
    assert rt.state(cid)["status"] == "paused"
    assert rt.cli("resume", cid).returncode == 0
    assert "frozen 0" in (cg / "cgroup.events").read_text()
    available = (mnt / "cgroup.controllers").read_text().split()
    if "memory" not in available:
        refused = rt.cli("update", "--memory", "64m", cid)
        assert refused.returncode == 1
        assert "memory cgroup v2 controller is not available" in refused.stderr
    if "pids" not in available:
        refused = rt.cli("update", "--pids-limit", "5", cid)
        assert refused.returncode == 1 and "pids cgroup v2 controller" in refused.stderr
    assert rt.cli("kill", cid, "KILL").returncode == 0
    deadline = time.monotonic() + 20
    while rt.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rt.cli("delete", cid).returncode == 0
    assert not cg.exists()


def test_a_limit_the_v2_host_cannot_enforce_is_refused_at_create(v2) -> None:
    rt, mnt, parent = v2
    if "memory" in (mnt / "cgroup.controllers").read_text().split():
        pytest.skip("this host's cgroup2 has the memory controller")
    cid = rt.new_id()
    spec = json.loads((rt.bundle / "config.json").read_text())
    linux = {
        **spec["linux"],
        "cgroupsPath": f"{parent}/{cid}",
        "resources": {**spec["linux"]["resources"], "memory": {"limit": 64 << 20}},
    }
    rt.config(["true"], linux=linux)
    run = rt.cli("run", "--bundle", str(rt.bundle), cid)
    assert run.returncode == 1
    assert "memory cgroup v2 controller" in run.stderr
    assert not (mnt / parent / cid).exists()


@pytest.fixture
def v2_root(monkeypatch: pytest.MonkeyPatch):
    """A cgroup2 mount that daemons started by the test use (DOCKYARD_CGROUP_ROOT).
    Set up before daemon_factory, so torn down after its daemons have stopped."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount cgroup2")
    mnt = Path(tempfile.mkdtemp(prefix="dky-cg2-", dir="/tmp"))
    mounted = subprocess.run(
        ["mount", "-t", "cgroup2", "none", str(mnt)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"this kernel does not let us mount cgroup2: {mounted.stderr.strip()}")
    monkeypatch.setenv("DOCKYARD_CGROUP_ROOT", str(mnt))
    try:
        yield mnt
    finally:
        # The daemon's parent cgroup stays, as on v1 (/sys/fs/cgroup/memory/dockyard):
        # empty, removed here with the mount.
        left = (
            [p for p in (mnt / "dockyard").iterdir() if p.is_dir()]
            if (mnt / "dockyard").exists()
            else []
        )
        with contextlib.suppress(OSError):
            (mnt / "dockyard").rmdir()
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()
        assert left == [], f"container cgroups left: {left}"


def test_the_daemon_runs_updates_and_pauses_containers_on_cgroup_v2(
    v2_root, daemon_factory
) -> None:
    mnt = v2_root
    d = daemon_factory()
    d.import_busybox()
    assert d.request("GET", "/info").json()["CgroupVersion"] == "2"
    run = d.dockyard("run", "-d", "--network", "none", "busybox", "sleep", "300")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    cg = mnt / "dockyard" / cid
    pid = d.request("GET", f"/containers/{cid}/json").json()["State"]["Pid"]
    assert f"0::/dockyard/{cid}\n" in Path(f"/proc/{pid}/cgroup").read_text()
    assert (cg / "cgroup.procs").read_text().split() == [str(pid)]
    assert d.dockyard("pause", cid).returncode == 0
    assert "frozen 1" in (cg / "cgroup.events").read_text()
    assert d.dockyard("unpause", cid).returncode == 0
    assert "frozen 0" in (cg / "cgroup.events").read_text()
    if "memory" not in (mnt / "cgroup.controllers").read_text().split():
        refused = d.dockyard("update", "--memory", "64m", cid)
        assert refused.returncode != 0
        assert "memory.max: the memory cgroup v2 controller" in refused.stderr
        limited = d.dockyard(
            "run", "--rm", "--network", "none", "--memory", "64m", "busybox", "true"
        )
        assert limited.returncode != 0 and "memory cgroup v2 controller" in limited.stderr
    assert d.dockyard("rm", "-f", cid).returncode == 0
    deadline = time.monotonic() + 10
    while cg.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cg.exists()
