"""docker run's isolation flags: their OCI rendering, what the init does with them
(recording kernel), and the engine's refusals, with dockerd's words."""

from __future__ import annotations

import os
import stat
from types import SimpleNamespace

import pytest

from dockyard.engine.isolation import (
    check_isolation,
    check_sysctl,
    parse_device,
    parse_ulimits,
    run_spec_options,
    security_settings,
)
from dockyard.engine.models import HostConfig
from dockyard.errors import InvalidParameter
from dockyard.kernel import flags as K
from dockyard.kernel.fake import RecordingKernel
from dockyard.runtime.bundle import config_from_oci
from dockyard.runtime.cgroups import available_controllers, create_cgroups
from dockyard.runtime.container_init import init_container
from dockyard.runtime.spec import Device, RunSpec

BUNDLE = "/b"


def oci(**kw: object) -> dict:
    base = dict(
        args=["sh"], env=[], hostname="h", rootfs_lower=["/l"], rootfs_upper="/u",
        rootfs_work="/w",
    )  # fmt: skip
    base.update(kw)
    return RunSpec(**base).to_oci("c1")


def test_namespaces_follow_ipc_pid_uts_modes() -> None:
    kinds = {ns["type"]: ns.get("path") for ns in oci()["linux"]["namespaces"]}
    assert kinds == {"mount": None, "pid": None, "ipc": None, "uts": None, "network": None}
    shared = oci(pid="host", uts="host", ipc="/proc/7/ns/ipc")["linux"]["namespaces"]
    kinds = {ns["type"]: ns.get("path") for ns in shared}
    assert "pid" not in kinds and "uts" not in kinds
    assert kinds["ipc"] == "/proc/7/ns/ipc"
    cfg = config_from_oci(BUNDLE, oci(pid="/proc/9/ns/pid", ipc="/proc/7/ns/ipc"))
    assert cfg.pid_mode == "/proc/9/ns/pid"
    assert cfg.ipc_path == "/proc/7/ns/ipc"
    assert not cfg.unshare_flags & K.CLONE_NEWIPC
    assert config_from_oci(BUNDLE, oci(pid="host")).pid_mode == "host"


def test_tmpfs_shm_init_rlimits_sysctls_in_config() -> None:
    config = oci(
        tmpfs={"/run": "size=1m,exec"}, shm_size=1 << 20, init_path="/usr/bin/tini-static",
        rlimits=[("RLIMIT_NOFILE", 100, 200)], sysctls={"kernel.shmmax": "65536"},
        oom_score_adj=300,
    )  # fmt: skip
    mounts = {m["destination"]: m for m in config["mounts"]}
    assert mounts["/run"]["options"] == ["noexec", "nosuid", "nodev", "size=1m", "exec"]
    assert "size=1048576" in mounts["/dev/shm"]["options"]
    assert mounts["/sbin/docker-init"]["source"] == "/usr/bin/tini-static"
    assert "ro" in mounts["/sbin/docker-init"]["options"]
    assert config["process"]["args"] == ["/sbin/docker-init", "--", "sh"]
    assert config["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]
    assert config["process"]["oomScoreAdj"] == 300
    assert config["linux"]["sysctl"] == {"kernel.shmmax": "65536"}
    cfg = config_from_oci(BUNDLE, config)
    run = [m for m in cfg.mounts if m.destination == "/run"][0]
    assert run.flags & K.MS_NOEXEC == 0  # "exec" after Docker's default noexec wins


def test_devices_are_made_and_allowed_in_the_device_cgroup() -> None:
    config = oci(devices=[Device("/dev/mynull", "c", 1, 3, 0o666, "rw")])
    assert config["linux"]["devices"][0]["path"] == "/dev/mynull"
    rules = config["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}  # deny all first
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"} in rules
    cfg = config_from_oci(BUNDLE, config)
    k = RecordingKernel()
    init_container(k, cfg, (10, 11, 12), ["devices"])
    made = {name: args for _fd, name, *args in k.find("mknodat")}
    assert made["mynull"] == [K.S_IFCHR | 0o666, 1, 3]


def test_init_writes_sysctls_before_proc_sys_turns_read_only_and_sets_rlimits() -> None:
    cfg = config_from_oci(
        BUNDLE, oci(sysctls={"kernel.shmmax": "65536"}, rlimits=[("RLIMIT_NOFILE", 10, 20)])
    )
    k = RecordingKernel()
    init_container(k, cfg, (10, 11, 12), [])
    names = k.names()
    assert k.find("write_sysctl") == [("kernel.shmmax", "65536")]
    assert k.find("set_rlimit") == [("RLIMIT_NOFILE", 10, 20)]
    first_ro_remount = next(
        i for i, (n, a) in enumerate(k.calls) if n == "mount" and a[1] == "/proc/sys"
    )
    assert names.index("write_sysctl") < first_ro_remount
    # Limits before seccomp and the capability drop (raising a hard limit needs a cap).
    assert names.index("set_rlimit") < names.index("set_seccomp_filter")


def test_cgroup_limits_written_and_cpuset_joined_only_when_asked() -> None:
    k = RecordingKernel()
    plain = config_from_oci(BUNDLE, oci())
    assert "cpuset" not in available_controllers(k, plain)
    cfg = config_from_oci(
        BUNDLE,
        oci(cpu_quota=50000, cpu_period=100000, cpuset_cpus="0", memory_reservation=64 << 20),
    )
    controllers = available_controllers(k, cfg)
    assert "cpuset" in controllers
    create_cgroups(k, cfg, controllers)
    writes = {(c, name): value for c, _path, name, value in k.find("cgroup_write")}
    assert writes[("cpu", "cpu.cfs_quota_us")] == "50000"
    assert writes[("cpu", "cpu.cfs_period_us")] == "100000"
    assert writes[("cpuset", "cpuset.cpus")] == "0"
    assert writes[("memory", "memory.soft_limit_in_bytes")] == str(64 << 20)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("vm.swappiness", "sysctl 'vm.swappiness' is not whitelisted"),
        ("kernel.core_pattern", "sysctl 'kernel.core_pattern' is not whitelisted"),
        ("kernel.hostname", "use --hostname"),
    ],
)
def test_host_sysctls_are_refused_by_name(name: str, words: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        check_sysctl(name, "bridge", "", "")
    assert words in str(err.value)


def test_namespaced_sysctls_pass_unless_the_namespace_is_the_hosts() -> None:
    check_sysctl("kernel.shmmax", "bridge", "", "")
    check_sysctl("net.ipv4.ip_forward", "bridge", "", "")
    check_sysctl("fs.mqueue.msg_max", "bridge", "", "")
    with pytest.raises(InvalidParameter, match="not allowed in host network namespace"):
        check_sysctl("net.ipv4.ip_forward", "host", "", "")
    with pytest.raises(InvalidParameter, match="not allowed in host IPC namespace"):
        check_sysctl("kernel.shmmax", "bridge", "host", "")


def test_ulimits() -> None:
    assert parse_ulimits([{"Name": "nofile", "Soft": 1, "Hard": 2}]) == [("RLIMIT_NOFILE", 1, 2)]
    with pytest.raises(InvalidParameter, match="invalid ulimit type: nofiles"):
        parse_ulimits([{"Name": "nofiles", "Soft": 1, "Hard": 2}])
    with pytest.raises(InvalidParameter, match="3 > 2"):
        parse_ulimits([{"Name": "nofile", "Soft": 3, "Hard": 2}])


def _fake_stat(mode: int, rdev: int) -> os.stat_result:
    return SimpleNamespace(st_mode=mode, st_rdev=rdev, st_uid=0, st_gid=6)  # type: ignore[return-value]


def test_device_parsing() -> None:
    dev = parse_device(
        {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"},
        lambda _p: _fake_stat(stat.S_IFBLK | 0o660, os.makedev(8, 0)),
    )
    assert (dev.path, dev.kind, dev.major, dev.minor, dev.access) == ("/dev/xvda", "b", 8, 0, "r")
    with pytest.raises(InvalidParameter, match="invalid device mode: rwx"):
        parse_device({"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"})
    with pytest.raises(InvalidParameter, match="not a device node"):
        parse_device({"PathOnHost": "/etc/passwd"})
    with pytest.raises(InvalidParameter, match='adding custom device "/dev/nope"'):
        parse_device({"PathOnHost": "/dev/nope"})


@pytest.mark.parametrize(
    ("hc", "words"),
    [
        (HostConfig(memory_reservation=1 << 20), "Minimum memory reservation allowed is 6MB"),
        (HostConfig(memory=64 << 20, memory_reservation=128 << 20), "can not be less than memory reservation"),
        (HostConfig(memory=64 << 20, memory_swap=32 << 20), "Minimum memoryswap limit"),
        (HostConfig(memory_swap=32 << 20), "always set the Memory limit"),
        (HostConfig(cpu_period=10), "CPU cfs period can not be less than 1ms"),
        (HostConfig(cpu_quota=10), "CPU cfs quota can not be less than 1ms"),
        (HostConfig(nano_cpus=10**9, cpu_quota=50000), "Nano CPUs and CPU Quota"),
        (HostConfig(cpuset_cpus="0-4096"), "Requested CPUs are not available"),
        (HostConfig(cpuset_cpus="1-0"), "Invalid value 1-0 for cpuset cpus"),
        (HostConfig(blkio_weight=5), "Range of blkio weight is from 10 to 1000"),
        (HostConfig(oom_score_adj=1001), "range for oom score adj is [-1000, 1000]"),
        (HostConfig(shm_size=-1), "SHM size can not be less than 0"),
        (HostConfig(ipc_mode="bogus"), "invalid IPC mode: bogus"),
        (HostConfig(pid_mode="bogus"), "invalid PID mode: bogus"),
        (HostConfig(uts_mode="container:x"), "invalid UTS mode"),
        (HostConfig(cgroupns_mode="private"), "cgroup namespace mode 'private' is not supported"),
        (HostConfig(userns_mode="keep-id"), "user namespace mode 'keep-id' is not supported"),
        (HostConfig(oom_kill_disable=True), "--oom-kill-disable is not supported"),
        (HostConfig(tmpfs={"run": ""}), "must be absolute"),
        (HostConfig(tmpfs={"/run": "size=1m,bogus"}), "invalid tmpfs option 'bogus'"),
        (HostConfig(security_opt=["seccomp={"]), "Decoding seccomp profile failed"),
        (HostConfig(security_opt=["no-new-privileges=maybe"]), "invalid --security-opt 2"),
        (HostConfig(security_opt=["apparmor=docker-default"]), "is not supported by dockyard"),
        (HostConfig(kernel_memory=1 << 30), "KernelMemory (kernel memory accounting is deprecated)"),
        (HostConfig(device_cgroup_rules=["c 1:3 r"]), "DeviceCgroupRules (--device-cgroup-rule)"),
        (HostConfig(blkio_device_read_i_ops=[{"Path": "/dev/sda", "Rate": 1}]), "BlkioDeviceReadIOps"),
        (HostConfig(device_requests=[{"Count": -1}]), "DeviceRequests (--gpus) is not supported"),
    ],
)  # fmt: skip
def test_bad_isolation_settings_are_refused(hc: HostConfig, words: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        check_isolation(hc)
    assert words in str(err.value)


def test_security_settings() -> None:
    s = security_settings(["no-new-privileges", "seccomp=unconfined", "label=disable"])
    assert s.no_new_privileges and s.seccomp_unconfined and s.seccomp_profile is None
    s = security_settings(["no-new-privileges=false", 'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'])
    assert not s.no_new_privileges
    assert s.seccomp_profile == {"defaultAction": "SCMP_ACT_ALLOW"}


def test_run_spec_options_from_host_config() -> None:
    hc = HostConfig(
        nano_cpus=1_500_000_000, ipc_mode="host", pid_mode="container:other", uts_mode="host",
        group_add=["1234"], ulimits=[{"Name": "nproc", "Soft": 5, "Hard": 6}],
    )  # fmt: skip
    opts = run_spec_options(hc, lambda ref: 4242, lambda path: None)
    assert (opts["cpu_quota"], opts["cpu_period"]) == (150000, 100000)
    assert opts["ipc"] == "host" and opts["ipc_shm"] == "/dev/shm"
    assert opts["pid"] == "/proc/4242/ns/pid"
    assert opts["uts"] == "host"
    assert opts["extra_gids"] == [1234]
    assert opts["rlimits"] == [("RLIMIT_NPROC", 5, 6)]


def test_ipc_container_shares_its_dev_shm_through_its_mount_namespace() -> None:
    opts = run_spec_options(HostConfig(ipc_mode="container:x"), lambda ref: 77, lambda p: None)
    assert opts["ipc"] == "/proc/77/ns/ipc"
    assert opts["ipc_shm_from"] == "/proc/77/ns/mnt"
    config = oci(ipc=opts["ipc"], ipc_shm_from=opts["ipc_shm_from"])
    assert "/dev/shm" not in {m["destination"] for m in config["mounts"]}
    cfg = config_from_oci(BUNDLE, config)
    k = RecordingKernel()
    init_container(k, cfg, (10, 11, 12), [])
    names = k.names()
    # Copied while still in the monitor's mount namespace, placed inside the new root.
    assert names.index("clone_mount_from_ns") < names.index("unshare")
    assert k.find("clone_mount_from_ns") == [("/proc/77/ns/mnt", "/dev/shm")]
    ((tree, target),) = k.find("move_mount_fd")
    assert k.path_of(target).endswith("/rootfs/dev/shm")
    assert names.index("move_mount_fd") < names.index("pivot_root")


def test_update_merges_checks_and_keeps_what_is_unset() -> None:
    from dockyard.engine.models import RestartPolicy, UpdateConfig
    from dockyard.engine.update import live_resources, merged_host_config

    hc = HostConfig(memory=64 << 20, cpu_shares=512, cpu_quota=20000, cpu_period=50000)
    new, warnings = merged_host_config(hc, UpdateConfig(memory=128 << 20, nano_cpus=10**9))
    assert warnings == []
    assert (new.memory, new.cpu_shares) == (128 << 20, 512)  # shares untouched
    assert (new.cpu_quota, new.cpu_period, new.nano_cpus) == (0, 0, 10**9)  # --cpus wins
    assert hc.memory == 64 << 20  # the stored config is not changed in place
    live = live_resources(new)
    assert (live["cpu_quota"], live["cpu_period"]) == (100000, 100000)
    assert live["memory_swap"] == 2 * (128 << 20)  # Docker's default: swap = memory
    with pytest.raises(InvalidParameter, match="Minimum memory limit allowed is 6MB"):
        merged_host_config(hc, UpdateConfig(memory=1 << 20))
    with pytest.raises(InvalidParameter, match="AutoRemove"):
        merged_host_config(
            HostConfig(auto_remove=True), UpdateConfig(restart_policy=RestartPolicy("always"))
        )
    with pytest.raises(InvalidParameter, match="Kernel memory limit is not supported"):
        merged_host_config(hc, UpdateConfig(kernel_memory=1 << 30))
    unlimited, _ = merged_host_config(HostConfig(pids_limit=10), UpdateConfig(pids_limit=0))
    assert unlimited.pids_limit == -1
