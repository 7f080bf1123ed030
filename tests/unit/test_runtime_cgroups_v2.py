"""cgroup v2 against a fake cgroupfs (a directory tree): the files each limit
writes, controllers enabled down the path, OOM and freezer reading, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import RuntimeFailure
from dockyard.kernel.fake import RecordingKernel
from dockyard.kernel.linux import LinuxKernel
from dockyard.runtime import cgroups, cgroups_v2
from dockyard.runtime.bundle import DeviceRule, Resources, config_from_oci
from dockyard.runtime.oci_cli import default_spec

FILES = [
    "memory.low",
    "cpu.max",
    "cpuset.cpus",
    "cpuset.mems",
    "io.weight",
    "cgroup.procs",
    "cgroup.subtree_control",
    "cgroup.freeze",
    "cgroup.events",
    "memory.max",
    "memory.swap.max",
    "memory.events",
    "memory.current",
    "memory.stat",
    "cpu.weight",
    "cpu.stat",
    "pids.max",
    "pids.current",
]


def fake_cgroupfs(root: Path, path: str, controllers: str = "cpu memory pids io") -> LinuxKernel:
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        d = root.joinpath(*parts[:depth])
        d.mkdir(exist_ok=True)
        for name in FILES:
            (d / name).write_text("")
    return LinuxKernel(cgroup_root=str(root))


def config(resources: Resources, path: str = "dockyard/c1"):
    cfg = config_from_oci(
        "/b", {**default_spec(), "linux": {**default_spec()["linux"], "cgroupsPath": path}}
    )
    cfg.resources = resources
    return cfg


def test_detected_only_where_a_cgroup2_root_is(tmp_path: Path) -> None:
    assert cgroups.available_controllers(LinuxKernel(cgroup_root=str(tmp_path))) == []
    kernel = fake_cgroupfs(tmp_path, "x")
    assert cgroups.available_controllers(kernel) == ["cgroup2:"]
    assert cgroups_v2.hierarchy_of(["cgroup2:"]) == ""
    assert cgroups_v2.hierarchy_of(["memory", "pids"]) is None
    assert cgroups_v2.host_cgroup_version(str(tmp_path)) == "2"
    assert cgroups_v2.host_cgroup_version(str(tmp_path / "x" / "nothing")) == "1"


def test_limits_are_written_as_v2_files(tmp_path: Path) -> None:
    kernel = fake_cgroupfs(tmp_path, "dockyard/c1")
    cfg = config(Resources(memory=64 << 20, memory_swap=96 << 20, cpu_shares=512, pids_limit=20))
    cgroups.create_cgroups(kernel, cfg, ["cgroup2:"])
    c1 = tmp_path / "dockyard" / "c1"
    assert (c1 / "memory.max").read_text() == str(64 << 20)
    # v1's memory+swap total becomes v2's swap alone.
    assert (c1 / "memory.swap.max").read_text() == str(32 << 20)
    assert (c1 / "cpu.weight").read_text() == str(cgroups_v2.cpu_weight(512))
    assert (c1 / "pids.max").read_text() == "20"
    # Each ancestor hands the controllers down (the root and dockyard/).
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +io +memory +pids"
    assert (
        tmp_path / "dockyard" / "cgroup.subtree_control"
    ).read_text() == "+cpu +io +memory +pids"
    cgroups.join_cgroups(kernel, cfg, ["cgroup2:"])
    assert (c1 / "cgroup.procs").read_text() == "0"


def test_unlimited_values_and_cpu_weight_range(tmp_path: Path) -> None:
    kernel = fake_cgroupfs(tmp_path, "dockyard/c1")
    cgroups.create_cgroups(
        kernel, config(Resources(memory=1 << 30, memory_swap=-1, pids_limit=-1)), ["cgroup2:"]
    )
    c1 = tmp_path / "dockyard" / "c1"
    assert (c1 / "memory.swap.max").read_text() == "max"
    assert (c1 / "pids.max").read_text() == "max"
    assert [cgroups_v2.cpu_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]


def test_a_limit_without_its_controller_is_refused_by_name(tmp_path: Path) -> None:
    kernel = fake_cgroupfs(tmp_path, "dockyard/c1", controllers="hugetlb")
    with pytest.raises(RuntimeFailure, match="memory, pids cgroup v2 controller"):
        cgroups.create_cgroups(
            kernel, config(Resources(memory=1 << 20, pids_limit=5)), ["cgroup2:"]
        )
    assert (tmp_path / "dockyard" / "c1" / "memory.max").read_text() == ""


def test_device_rules_become_a_bpf_program_on_the_cgroup(tmp_path: Path) -> None:
    kernel = RecordingKernel()
    rules = [DeviceRule(False, "a", None, None, "rwm"), DeviceRule(True, "c", 1, 3, "rwm")]
    cgroups_v2.create(kernel, "", config(Resources(devices=rules)))
    names = [c[0] for c in kernel.calls]
    assert names.index("cgroup_create") < names.index("cgroup_attach_device_filter")
    with pytest.raises(RuntimeFailure, match="linux.resources.devices"):
        cgroups_v2.create(
            kernel, "", config(Resources(devices=[DeviceRule(True, "c", 1, 3, "rwx")]))
        )


def test_oom_and_stats_read_v2_files(tmp_path: Path) -> None:
    kernel = fake_cgroupfs(tmp_path, "dockyard/c1")
    cfg = config(Resources())
    c1 = tmp_path / "dockyard" / "c1"
    (c1 / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    assert cgroups.oom_killed(kernel, cfg, ["cgroup2:"]) is False
    (c1 / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroups.oom_killed(kernel, cfg, ["cgroup2:"]) is True
    (c1 / "memory.current").write_text("4096\n")
    (c1 / "memory.max").write_text("max\n")
    (c1 / "memory.stat").write_text("anon 1024\nfile 2048\n")
    (c1 / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (c1 / "pids.current").write_text("2\n")
    (c1 / "pids.max").write_text("10\n")
    stats = cgroups.read_stats(kernel, cfg, ["cgroup2:"])
    assert stats["memory"]["usage"] == 4096 and stats["memory"]["limit"] == -1
    assert stats["memory"]["stats"] == {"anon": 1024, "file": 2048}
    assert stats["memory"]["failcnt"] == 3
    assert stats["cpu"]["total_usage_ns"] == 1_500_000
    assert stats["pids"] == {"current": 2, "limit": 10}


def test_reservation_quota_cpuset_and_io_weight_on_v2(tmp_path: Path) -> None:
    kernel = fake_cgroupfs(tmp_path, "dockyard/c1", controllers="cpu cpuset io memory pids")
    res = Resources(
        memory_reservation=32 << 20,
        cpu_quota=50000,
        cpu_period=100000,
        cpuset_cpus="0",
        cpuset_mems="0",
        blkio_weight=500,
    )
    cgroups.create_cgroups(kernel, config(res), ["cgroup2:"])
    c1 = tmp_path / "dockyard" / "c1"
    assert (c1 / "memory.low").read_text() == str(32 << 20)
    assert (c1 / "cpu.max").read_text() == "50000 100000"
    assert (c1 / "cpuset.cpus").read_text() == "0" and (c1 / "cpuset.mems").read_text() == "0"
    assert (c1 / "io.weight").read_text() == str(cgroups_v2.blkio_weight_to_io(500))
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +cpuset +io +memory +pids"


def live(**changes: object) -> dict:
    """engine/update.py's live_resources shape."""
    res = {
        "memory": 0,
        "memory_swap": 0,
        "memory_reservation": 0,
        "cpu_shares": 0,
        "cpu_quota": -1,
        "cpu_period": 100000,
        "cpuset_cpus": "",
        "cpuset_mems": "",
        "blkio_weight": 0,
        "pids_limit": 0,
    }
    res.update(changes)
    return res


def test_docker_update_of_a_running_container_writes_its_v2_files(tmp_path: Path) -> None:
    kernel = fake_cgroupfs(tmp_path, "dockyard/c1")
    cfg = config(Resources(memory=64 << 20))
    cgroups.create_cgroups(kernel, cfg, ["cgroup2:"])
    c1 = tmp_path / "dockyard" / "c1"
    (c1 / "cgroup.controllers").write_text("cpu io memory pids\n")
    warnings = cgroups.update_running(
        kernel,
        cfg,
        live(
            memory=128 << 20,
            memory_swap=256 << 20,
            memory_reservation=32 << 20,
            cpu_shares=2048,
            cpu_quota=50000,
            blkio_weight=500,
            pids_limit=-1,
        ),
    )
    assert warnings == []
    assert (c1 / "memory.max").read_text() == str(128 << 20)
    assert (c1 / "memory.swap.max").read_text() == str(128 << 20)  # the swap beyond memory
    assert (c1 / "memory.low").read_text() == str(32 << 20)
    assert (c1 / "cpu.weight").read_text() == str(cgroups_v2.cpu_weight(2048))
    assert (c1 / "cpu.max").read_text() == "50000 100000"
    assert (c1 / "io.weight").read_text() == str(cgroups_v2.blkio_weight_to_io(500))
    assert (c1 / "pids.max").read_text() == "max"
    # --cpus removed: the quota goes back to none. (cgroupfs writes replace the value;
    # this fake's regular file needs emptying first.)
    (c1 / "cpu.max").write_text("")
    cgroups.update_running(kernel, cfg, live(cpu_quota=-1))
    assert (c1 / "cpu.max").read_text() == "max 100000"


def test_docker_update_without_the_controller_is_refused_by_name_and_writes_nothing(
    tmp_path: Path,
) -> None:
    kernel = fake_cgroupfs(tmp_path, "dockyard/c1", controllers="cpu pids")
    cfg = config(Resources())
    cgroups.create_cgroups(kernel, cfg, ["cgroup2:"])
    c1 = tmp_path / "dockyard" / "c1"
    (c1 / "cgroup.controllers").write_text("cpu pids\n")
    with pytest.raises(RuntimeFailure, match=r"memory\.max, memory\.low: the memory cgroup v2"):
        cgroups.update_running(
            kernel, cfg, live(memory=1 << 30, memory_reservation=1 << 20, pids_limit=9)
        )
    assert (c1 / "memory.max").read_text() == ""
    assert (c1 / "pids.max").read_text() == ""  # nothing of it was written
