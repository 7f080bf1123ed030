"""RunSpec -> OCI config.json, and config.json -> the typed ContainerConfig."""

from __future__ import annotations

import json
import os

import pytest

from dockyard.errors import KernelError, RuntimeFailure
from dockyard.kernel import flags as K
from dockyard.kernel.linux import LinuxKernel
from dockyard.runtime.bundle import config_from_oci, load_config
from dockyard.runtime.seccomp import ANNOTATION_PROGRAM
from dockyard.runtime.spec import DEFAULT_CAPABILITIES, BindMount, RunSpec, write_bundle


def make_spec(**overrides) -> RunSpec:
    base = dict(
        args=["echo", "hello world"],
        env=["PATH=/usr/bin:/bin", "HOME=/root"],
        hostname="abc123",
        rootfs_lower=["/layers/top", "/layers/base"],
        rootfs_upper="/c/upper",
        rootfs_work="/c/work",
    )
    base.update(overrides)
    return RunSpec(**base)


def test_oci_config_carries_process_and_root() -> None:
    oci = make_spec(cwd="/app", uid=1000, gid=1000, additional_gids=[10, 20]).to_oci("abc")
    assert oci["ociVersion"] in ("1.0.2", "1.1.0")
    assert oci["process"]["args"] == ["echo", "hello world"]
    assert oci["process"]["env"] == ["PATH=/usr/bin:/bin", "HOME=/root"]
    assert oci["process"]["cwd"] == "/app"
    assert oci["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]}
    assert oci["root"] == {"path": "rootfs", "readonly": False}
    assert oci["hostname"] == "abc123"
    ann = oci["annotations"]
    assert ann["org.dockyard.rootfs.lowerdir"] == "/layers/top:/layers/base"
    assert ann["org.dockyard.rootfs.upperdir"] == "/c/upper"
    assert ann["org.dockyard.rootfs.workdir"] == "/c/work"
    json.dumps(oci)  # serialisable as is


def test_default_capabilities_are_dockers() -> None:
    caps = make_spec().to_oci("x")["process"]["capabilities"]
    assert caps["bounding"] == DEFAULT_CAPABILITIES
    assert set(caps["effective"]) == set(caps["permitted"]) == set(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) == 14
    assert "CAP_SYS_ADMIN" not in caps["bounding"]
    assert "inheritable" not in caps or caps["inheritable"] == []


def test_explicit_and_privileged_capabilities() -> None:
    caps = make_spec(capabilities=["net_admin", "CAP_KILL"]).to_oci("x")["process"]["capabilities"]
    assert caps["bounding"] == ["CAP_NET_ADMIN", "CAP_KILL"]
    priv = make_spec(privileged=True).to_oci("x")
    assert "CAP_SYS_ADMIN" in priv["process"]["capabilities"]["bounding"]
    assert "maskedPaths" not in priv["linux"]
    assert priv["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sysfs = next(m for m in priv["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sysfs["options"]


def test_namespaces_follow_network_mode() -> None:
    def ns(network: str) -> list[dict]:
        return make_spec(network=network).to_oci("x")["linux"]["namespaces"]

    assert {"type": "network"} in ns("private")
    assert not [n for n in ns("host") if n["type"] == "network"]
    assert {"type": "network", "path": "/run/netns/n1"} in ns("/run/netns/n1")
    for kind in ("pid", "ipc", "uts", "mount"):
        assert {"type": kind} in ns("private")


def test_mounts_are_dockers_defaults_then_binds() -> None:
    spec = make_spec(
        mounts=[
            BindMount("/c/hosts", "/etc/hosts"),
            BindMount("/c/resolv.conf", "/etc/resolv.conf", readonly=True),
        ]
    )
    mounts = spec.to_oci("x")["mounts"]
    dests = [m["destination"] for m in mounts]
    assert dests == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/sys",
        "/sys/fs/cgroup",
        "/dev/mqueue",
        "/dev/shm",
        "/etc/hosts",
        "/etc/resolv.conf",
    ]
    pts = mounts[2]
    assert "newinstance" in pts["options"] and "ptmxmode=0666" in pts["options"]
    assert "ro" in mounts[3]["options"]  # /sys read-only
    assert mounts[4]["type"] == "cgroup" and "ro" in mounts[4]["options"]
    assert "size=67108864" in mounts[6]["options"]  # /dev/shm 64m
    assert mounts[7] == {
        "destination": "/etc/hosts",
        "type": "bind",
        "source": "/c/hosts",
        "options": ["rbind", "rprivate"],
    }
    assert "ro" in mounts[8]["options"]


def test_resources_and_cgroup_path() -> None:
    linux = make_spec(memory=64 << 20, cpu_shares=512, pids_limit=100, cgroup_parent="dky").to_oci(
        "cid"
    )["linux"]
    assert linux["cgroupsPath"] == "/dky/cid"
    assert linux["resources"]["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert linux["resources"]["cpu"] == {"shares": 512}
    assert linux["resources"]["pids"] == {"limit": 100}
    assert "memory" not in make_spec().to_oci("c")["linux"]["resources"]
    unlimited_swap = make_spec(memory=1 << 20, memory_swap=-1).to_oci("c")["linux"]["resources"][
        "memory"
    ]
    assert unlimited_swap["swap"] == -1


def test_write_bundle_is_atomic_and_creates_rootfs(tmp_path) -> None:
    bundle = tmp_path / "bundle"
    oci = make_spec().to_oci("abc")
    write_bundle(str(bundle), oci)
    assert (bundle / "rootfs").is_dir()
    written = json.loads((bundle / "config.json").read_text())
    # The compiled seccomp program rides along as an annotation.
    assert written["annotations"].pop(ANNOTATION_PROGRAM)
    assert written == oci
    assert sorted(os.listdir(bundle)) == ["config.json", "rootfs"]  # no temporary left


def test_config_round_trip(tmp_path) -> None:
    spec = make_spec(
        terminal=True,
        open_stdin=True,
        readonly_rootfs=True,
        uid=5,
        gid=6,
        mounts=[BindMount("/c/hosts", "/etc/hosts", readonly=True)],
        memory=1 << 20,
        pids_limit=-1,
    )
    write_bundle(str(tmp_path), spec.to_oci("cid"))
    cfg = load_config(str(tmp_path))
    assert cfg.rootfs == str(tmp_path / "rootfs")
    assert cfg.lowerdirs == ["/layers/top", "/layers/base"]
    assert (cfg.upperdir, cfg.workdir) == ("/c/upper", "/c/work")
    assert cfg.terminal and cfg.open_stdin and cfg.readonly_rootfs
    assert (cfg.uid, cfg.gid) == (5, 6)
    assert cfg.unshare_flags == K.CLONE_NEWNS | K.CLONE_NEWUTS | K.CLONE_NEWIPC | K.CLONE_NEWNET
    assert cfg.new_netns and not cfg.netns_path
    assert cfg.cgroup_path == "dockyard/cid"
    assert cfg.resources.memory == 1 << 20 and cfg.resources.pids_limit == -1
    hosts = cfg.mounts[-1]
    assert hosts.is_bind and hosts.flags & K.MS_RDONLY and hosts.flags & K.MS_REC
    assert hosts.propagation == K.MS_PRIVATE | K.MS_REC
    proc = cfg.mounts[0]
    assert proc.flags == K.MS_NOSUID | K.MS_NOEXEC | K.MS_NODEV and proc.data == ""
    dev = cfg.mounts[1]
    assert dev.data == "mode=755,size=65536k" and dev.flags & K.MS_STRICTATIME


def test_bad_config_is_a_runtime_failure(tmp_path) -> None:
    with pytest.raises(RuntimeFailure):
        load_config(str(tmp_path))
    with pytest.raises(RuntimeFailure):
        config_from_oci(str(tmp_path), {"process": {}})


def test_runtime_refuses_a_cgroups_path_that_climbs_out() -> None:
    # An OCI bundle written by anyone (containerd, a hand-made config.json) is
    # checked too, not only what the engine validated.
    oci = RunSpec(
        args=["true"], env=[], hostname="h", rootfs_lower=["/l"], rootfs_upper="/u",
        rootfs_work="/w", cgroup_parent="../../../tmp/x",
    ).to_oci("c1")  # fmt: skip
    with pytest.raises(RuntimeFailure, match=r"\.\."):
        config_from_oci("/b/c1", oci)
    ok = RunSpec(
        args=["true"], env=[], hostname="h", rootfs_lower=["/l"], rootfs_upper="/u",
        rootfs_work="/w", cgroup_parent="/a/./b/",
    ).to_oci("c1")  # fmt: skip
    assert config_from_oci("/b/c1", ok).cgroup_path == "a/b/c1"


def test_kernel_refuses_cgroup_paths_with_dotdot(tmp_path) -> None:
    kernel = LinuxKernel(cgroup_root=str(tmp_path))
    with pytest.raises(KernelError):
        kernel.cgroup_create("memory", "../../x")
    assert not (tmp_path.parent / "x").exists()
