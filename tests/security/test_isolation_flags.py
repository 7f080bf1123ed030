"""Attacks through docker run's isolation flags: device nodes, sysctls, tmpfs and
device paths that try to reach the host, and seccomp profiles the runtime must not
half-apply."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _host_disk() -> tuple[int, int] | None:
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("loop", "ram", "zram")):
            continue
        try:
            major, minor = Path(f"/sys/block/{name}/dev").read_text().split(":")
        except OSError:
            continue
        return int(major), int(minor)
    return None


@pytest.mark.parametrize("extra", [(), ("--device", "/dev/null:/dev/mynull")])
def test_mknod_of_the_host_disk_cannot_be_read(daemon, extra) -> None:
    disk = _host_disk()
    if disk is None:
        pytest.skip("no block device on this host")
    major, minor = disk
    proc = daemon.dockyard(
        "run", "--rm", *extra, "busybox", "sh", "-c",
        f"mknod /tmp/d b {major} {minor} && echo made; head -c 512 /tmp/d | wc -c;"
        f" mknod /dev/d2 b {major} {minor}; head -c 512 /dev/d2 | wc -c",
    )  # fmt: skip
    assert "made" in proc.stdout, proc.stderr
    # Made (CAP_MKNOD is Docker's default), never opened: the device cgroup says no.
    assert proc.stdout.split()[1:] == ["0", "0"]
    assert proc.stderr.count("Operation not permitted") >= 2


@pytest.mark.parametrize(
    "name", ["net.ipv4/../../vm.swappiness", "net.ipv4..vm", "fs.mqueue/../../../vm/swappiness"]
)
def test_sysctl_names_cannot_walk_out_of_their_namespace(daemon, name) -> None:
    before = Path("/proc/sys/vm/swappiness").read_text()
    resp = daemon.request(
        "POST",
        "/containers/create",
        {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Sysctls": {name: "1"}}},
    )
    assert resp.status == 400, resp.body
    assert "invalid sysctl name" in resp.message
    assert Path("/proc/sys/vm/swappiness").read_text() == before


def test_host_sysctl_refused_at_create(daemon) -> None:
    resp = daemon.request(
        "POST",
        "/containers/create",
        {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Sysctls": {"kernel.panic": "1"}}},
    )
    assert resp.status == 400, resp.body
    assert resp.message.startswith("sysctl 'kernel.panic' is not whitelisted")


def test_tmpfs_and_device_paths_stay_inside_the_container(daemon, unique) -> None:
    marker = unique("escape")
    host_tmpfs = Path("/tmp", marker + "-tmpfs")
    host_node = Path("/tmp", marker + "-node")
    proc = daemon.dockyard(
        "run", "--rm",
        "--tmpfs", f"/../../../tmp/{host_tmpfs.name}",
        "--device", f"/dev/null:/../../../tmp/{host_node.name}",
        "busybox", "sh", "-c",
        f"grep -c ' /tmp/{host_tmpfs.name} tmpfs' /proc/mounts; ls -l /tmp/{host_node.name}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "1"  # mounted inside the container's root
    assert not host_tmpfs.exists() and not host_node.exists()
    assert f" {host_tmpfs} " not in Path("/proc/self/mountinfo").read_text()


@pytest.mark.parametrize(
    ("profile", "words"),
    [
        ('{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}', "listenerPath"),
        ('{"defaultAction": "SCMP_ACT_NOTIFY"}', "unknown action 'SCMP_ACT_NOTIFY'"),
        (
            '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 7, "value": 0, "op": "SCMP_CMP_EQ"}]}]}',
            "index must be 0 to 5",
        ),  # noqa: E501
        ('["not", "a", "profile"]', "not a JSON object"),
    ],
)
def test_bad_seccomp_profiles_are_refused_at_create(daemon, profile, words) -> None:
    resp = daemon.request(
        "POST",
        "/containers/create",
        {
            "Image": "busybox",
            "Cmd": ["true"],
            "HostConfig": {"SecurityOpt": [f"seccomp={profile}"]},
        },
    )
    assert resp.status == 400, resp.body
    assert words in resp.message
