"""Dockyard's runtime against runc on the same bundle: what the container sees of its
own confinement (capabilities, seccomp, no_new_privs), its mount table and its /dev
must be the same. Skipped where runc is not installed (Debian's `runc`)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard.runtime.bundle import CGROUP_CONTROLLERS
from dockyard.runtime.launcher import Launcher
from dockyard.runtime.spec import Device, RunSpec, write_bundle

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and a real kernel"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed"),
]

CGROUP_PARENT = f"dockyard-runc-{os.getpid()}"
APPLETS = ["sh", "cat", "ls", "grep", "sort"]
PROBE = "grep -E '^(CapEff|CapBnd|CapPrm|Seccomp|NoNewPrivs):' /proc/self/status; echo --; cat /proc/self/mounts; echo --; ls -A /dev | sort"  # noqa: E501


def make_bundle(base: Path, cid: str, **spec: object) -> Path:
    bundle = base / cid
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "dev", "sys", "etc", "tmp"):
        (rootfs / d).mkdir()
    oci = RunSpec(
        args=["sh", "-c", PROBE],
        env=["PATH=/bin"],
        hostname="cmp",
        rootfs_lower=[],
        rootfs_upper="",
        rootfs_work="",
        network="private",
        cgroup_parent=CGROUP_PARENT,
        **spec,
    ).to_oci(cid)
    write_bundle(str(bundle), oci)
    return bundle


def run_ours(tmp: Path, cid: str, bundle: Path) -> str:
    async def main() -> str:
        launcher = Launcher(str(tmp / "run"))
        await launcher.start()
        try:
            link = await launcher.run(cid, str(bundle), log_path=str(bundle / "log.json"))
            out = bytearray()
            async for stream, data in link.frames():
                if stream == 1:
                    out.extend(data)
            await link.wait()
            await link.close()
            return out.decode()
        finally:
            await launcher.close()

    return asyncio.run(asyncio.wait_for(main(), 60))


def run_runc(tmp: Path, cid: str, bundle: Path) -> str:
    root = tmp / "runc-root"
    proc = subprocess.run(
        ["runc", "--root", str(root), "run", "--bundle", str(bundle), cid],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    subprocess.run(["runc", "--root", str(root), "delete", "-f", cid], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def views(output: str) -> tuple[dict[str, str], set[tuple[str, str, str]], set[str]]:
    status, mounts, dev = output.split("--\n")
    fields = dict(line.split(":\t", 1) for line in status.splitlines())
    table = set()
    for line in mounts.splitlines():
        _src, target, fstype, options, *_ = line.split()
        # Options the two set differently without changing what the container may do.
        kept = sorted(o for o in options.split(",") if not o.startswith(("size=", "inode64")))
        table.add((target, fstype, ",".join(kept)))
    return fields, table, set(dev.split())


@pytest.fixture
def cleanup_cgroups():
    yield
    for controller in os.listdir("/sys/fs/cgroup"):
        path = Path("/sys/fs/cgroup", controller, CGROUP_PARENT)
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir():
                    child.rmdir()
            path.rmdir()


@pytest.mark.parametrize(
    "spec",
    [{}, {"capabilities": []}, {"capabilities": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]},
     {"no_new_privileges": True}, {"seccomp_unconfined": True},
     {"devices": [Device("/dev/mynull", "c", 1, 3, 0o666)], "readonly_rootfs": True,
      "tmpfs": {"/scratch": "size=1m"}, "shm_size": 2 << 20}],
    ids=["default", "no-caps", "sys-admin", "nnp", "unconfined", "device-ro-tmpfs"],
)  # fmt: skip
def test_same_bundle_same_view_as_runc(tmp_path: Path, cleanup_cgroups, spec: dict) -> None:
    ours_bundle = make_bundle(tmp_path, "cmp-ours", **spec)
    runc_bundle = make_bundle(tmp_path, "cmp-runc", **spec)
    ours = views(run_ours(tmp_path, "cmp-ours", ours_bundle))
    theirs = views(run_runc(tmp_path, "cmp-runc", runc_bundle))
    assert ours[0] == theirs[0]  # CapEff, CapBnd, CapPrm, Seccomp, NoNewPrivs
    # Two deliberate differences, checked as such: the /sys/fs/cgroup tmpfs is read-only
    # here (runc leaves it writable), and the cgroup v1 hierarchies a container does not
    # join by default (cpuset, blkio, name=systemd, hugetlb...: runc joins all the host
    # has) are not shown.
    cgroup_tmpfs = ("/sys/fs/cgroup", "tmpfs", "mode=755,nodev,noexec,nosuid,relatime")
    assert (cgroup_tmpfs[0], "tmpfs", cgroup_tmpfs[2] + ",ro") in ours[1]
    assert (cgroup_tmpfs[0], "tmpfs", cgroup_tmpfs[2] + ",rw") in theirs[1]
    not_joined = {
        f"/sys/fs/cgroup/{h}" for h in os.listdir("/sys/fs/cgroup") if h not in CGROUP_CONTROLLERS
    }
    assert {m for m in ours[1] if m[0] != "/sys/fs/cgroup"} == {
        m for m in theirs[1] if m[0] != "/sys/fs/cgroup" and m[0] not in not_joined
    }  # the rest of the mount table: targets, types, options
    assert ours[2] == theirs[2]  # /dev entries
