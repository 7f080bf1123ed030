"""cgroup v2 on the real kernel, through a cgroup2 mount of the test's own.

This host is v1 (memory, cpu and pids are bound to v1 hierarchies, so v2
cannot enable them); what v2 does without controllers is real here: the
container's directory, moving a process in, the freezer (cgroup.freeze is
core v2), removal, and a limit refused by name because its controller is not
available. The limit files themselves are covered against a fake cgroupfs
(tests/unit/test_runtime_cgroups_v2.py).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from dockyard.errors import RuntimeFailure
from dockyard.kernel.linux import LinuxKernel
from dockyard.runtime import cgroups
from dockyard.runtime.bundle import DeviceRule, Resources, config_from_oci
from dockyard.runtime.oci_cli import default_spec
from dockyard.runtime.oci_lifecycle import ALWAYS_ALLOWED_DEVICES


@pytest.fixture
def v2_mount(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount cgroup2")
    mnt = tmp_path / "cg2"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "cgroup2", "none", str(mnt)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"this kernel does not let us mount cgroup2: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def config(path: str, resources: Resources):
    spec = default_spec()
    cfg = config_from_oci("/b", {**spec, "linux": {**spec["linux"], "cgroupsPath": path}})
    cfg.resources = resources
    return cfg


def test_v2_directory_join_freeze_and_removal(v2_mount: Path) -> None:
    kernel = LinuxKernel(cgroup_root=str(v2_mount))
    controllers = cgroups.available_controllers(kernel)
    assert controllers == ["cgroup2:"]
    name = f"dky-v2-{uuid.uuid4().hex[:8]}"
    cfg = config(f"{name}/c1", Resources())
    cgroups.create_cgroups(kernel, cfg, controllers)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        assert (v2_mount / name / "c1").is_dir()
        kernel.cgroup_add_pid("", cfg.cgroup_path, sleeper.pid)
        assert f"0::/{name}/c1\n" in Path(f"/proc/{sleeper.pid}/cgroup").read_text()
        cgroups.set_frozen(kernel, cfg, controllers, True)
        assert "frozen 1" in (v2_mount / name / "c1" / "cgroup.events").read_text()
        cgroups.set_frozen(kernel, cfg, controllers, False)
        assert "frozen 0" in (v2_mount / name / "c1" / "cgroup.events").read_text()
        refused = config(f"{name}/c2", Resources(memory=64 << 20))
        available = (v2_mount / "cgroup.controllers").read_text().split()
        if "memory" not in available:
            with pytest.raises(RuntimeFailure, match="memory cgroup v2 controller"):
                cgroups.create_cgroups(kernel, refused, controllers)
            assert not (v2_mount / name / "c2").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    deadline = time.monotonic() + 10
    while (
        v2_mount / name / "c1" / "cgroup.procs"
    ).read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.01)
    cgroups.remove_cgroups(kernel, cfg, controllers)
    assert not (v2_mount / name / "c1").exists()
    os.rmdir(v2_mount / name)


def test_v2_device_rules_are_enforced_by_the_bpf_program(v2_mount: Path) -> None:
    """Only /dev/null allowed: a process in the cgroup can open it, not /dev/zero."""
    kernel = LinuxKernel(cgroup_root=str(v2_mount))
    name = f"dky-v2-{uuid.uuid4().hex[:8]}"
    rules = [DeviceRule(False, "a", None, None, "rwm"), DeviceRule(True, "c", 1, 3, "rwm")]
    cfg = config(f"{name}/c1", Resources(devices=rules))
    cgroups.create_cgroups(kernel, cfg, ["cgroup2:"])
    procs = v2_mount / name / "c1" / "cgroup.procs"
    try:
        script = (
            f"echo $$ > {procs}; cat /dev/null && echo null-ok; "
            "head -c1 /dev/zero >/dev/null 2>&1 && echo zero-ok || echo zero-denied"
        )
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
        assert out.stdout.split() == ["null-ok", "zero-denied"], out.stdout + out.stderr
        # Outside the cgroup nothing changed.
        with open("/dev/zero", "rb") as f:
            assert f.read(1) == b"\0"
        # Docker's whole default list (what every container gets) passes the verifier.
        full = config(f"{name}/c2", Resources(devices=docker_default_rules()))
        cgroups.create_cgroups(kernel, full, ["cgroup2:"])
        cgroups.remove_cgroups(kernel, full, ["cgroup2:"])
    finally:
        cgroups.remove_cgroups(kernel, cfg, ["cgroup2:"])
        os.rmdir(v2_mount / name)


def docker_default_rules() -> list[DeviceRule]:
    return [
        DeviceRule(False, "a", None, None, "rwm"),
        DeviceRule(True, "c", None, None, "m"),
        DeviceRule(True, "b", None, None, "m"),
        *ALWAYS_ALLOWED_DEVICES,
        DeviceRule(True, "c", 10, 200, "rwm"),
    ]
