"""docker run's isolation and resource flags, as a user sees them in real containers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in {text!r}")


def run(dockyard, *args: str):
    return dockyard("run", "--rm", *args)


def test_cap_drop_all_leaves_no_capability(dockyard):
    proc = run(dockyard, "--cap-drop", "ALL", "busybox", "cat", "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    assert int(status_field(proc.stdout, "CapEff"), 16) == 0
    assert int(status_field(proc.stdout, "CapBnd"), 16) == 0


def test_cap_add_grants_and_lifts_its_seccomp_group(dockyard):
    # CAP_SYS_ADMIN: the capability and the syscalls Docker gates on it (mount).
    proc = run(
        dockyard, "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
        "grep CapEff /proc/self/status; mkdir -p /m && mount -t tmpfs t /m && echo mounted",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert int(status_field(proc.stdout, "CapEff"), 16) & (1 << 21)
    assert "mounted" in proc.stdout
    denied = run(dockyard, "busybox", "sh", "-c", "mkdir -p /m && mount -t tmpfs t /m")
    assert denied.returncode != 0


def test_default_seccomp_and_nnp_in_status(dockyard):
    proc = run(dockyard, "busybox", "cat", "/proc/self/status")
    assert status_field(proc.stdout, "Seccomp") == "2"
    assert status_field(proc.stdout, "NoNewPrivs") == "0"
    nnp = run(
        dockyard, "--security-opt", "no-new-privileges", "busybox", "cat", "/proc/self/status"
    )
    assert status_field(nnp.stdout, "NoNewPrivs") == "1"
    off = run(
        dockyard, "--security-opt", "no-new-privileges=false", "busybox", "cat", "/proc/self/status"
    )
    assert status_field(off.stdout, "NoNewPrivs") == "0"
    unconfined = run(
        dockyard, "--security-opt", "seccomp=unconfined", "busybox", "cat", "/proc/self/status"
    )
    assert status_field(unconfined.stdout, "Seccomp") == "0"


def test_seccomp_profile_file_is_applied(dockyard, tmp_path):
    # A profile that refuses mkdir (and allows the rest) as a user would write one.
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        ],
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    proc = run(
        dockyard, "--security-opt", f"seccomp={path}", "busybox", "sh", "-c", "mkdir /x; echo $?"
    )
    assert proc.returncode == 0, proc.stderr
    assert "Permission denied" in proc.stderr
    assert proc.stdout.strip() == "1"


def test_containers_common_profile_runs_a_shell(dockyard):
    path = "/usr/share/containers/seccomp.json"
    if not os.path.exists(path):
        pytest.skip(f"{path} absent (Debian's golang-github-containers-common)")
    proc = run(dockyard, "--security-opt", f"seccomp={path}", "busybox", "sh", "-c", "echo ok")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"


def test_bad_seccomp_profile_is_refused_naming_the_field(dockyard, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["opne"], "action": "SCMP_ACT_ALLOW"}]}'
    )
    proc = run(dockyard, "--security-opt", f"seccomp={path}", "busybox", "true")
    assert proc.returncode == 125
    assert "unknown system call 'opne'" in proc.stderr
    missing = run(dockyard, "--security-opt", f"seccomp={tmp_path}/nope.json", "busybox", "true")
    assert missing.returncode == 125
    assert "opening seccomp profile" in missing.stderr


def test_read_only_rootfs(dockyard):
    proc = run(dockyard, "--read-only", "busybox", "touch", "/x")
    assert proc.returncode != 0
    assert "Read-only file system" in proc.stderr


def test_tmpfs_with_options(dockyard):
    proc = run(
        dockyard, "--read-only", "--tmpfs", "/scratch:size=1m,mode=1777", "busybox", "sh", "-c",
        "touch /scratch/x && grep ' /scratch ' /proc/mounts",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fields = proc.stdout.split()
    assert fields[2] == "tmpfs"
    assert "size=1024k" in fields[3]
    assert "noexec" in fields[3] and "nosuid" in fields[3]


def test_device_mapping_works(dockyard):
    proc = run(
        dockyard, "--device", "/dev/null:/dev/mynull", "busybox", "sh", "-c",
        "echo hi > /dev/mynull && ls -l /dev/mynull",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("c")
    assert "1," in proc.stdout and " 3 " in proc.stdout


def test_device_that_does_not_exist_is_refused(dockyard):
    proc = run(dockyard, "--device", "/dev/nope-dky", "busybox", "true")
    assert proc.returncode == 125
    assert 'adding custom device "/dev/nope-dky"' in proc.stderr


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


def test_mknod_of_a_host_disk_gives_no_access(dockyard):
    disk = _host_disk()
    if disk is None:
        pytest.skip("no block device on this host")
    major, minor = disk
    # CAP_MKNOD is Docker's default: the node can be made, the device cgroup refuses
    # to open it.
    proc = run(
        dockyard, "busybox", "sh", "-c",
        f"mknod /tmp/disk b {major} {minor} && echo made; head -c 512 /tmp/disk | wc -c",
    )  # fmt: skip
    assert "made" in proc.stdout, proc.stderr
    assert "Operation not permitted" in proc.stderr
    assert proc.stdout.split()[-1] == "0"


def test_ulimit_nofile(dockyard):
    proc = run(
        dockyard, "--ulimit", "nofile=100:200", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["100", "200"]


def test_bad_ulimit_is_refused(dockyard):
    proc = run(dockyard, "--ulimit", "nofile=300:200", "busybox", "true")
    assert proc.returncode == 125
    assert "soft limit must be less than or equal to hard limit" in proc.stderr
    proc = run(dockyard, "--ulimit", "bogus=1:2", "busybox", "true")
    assert proc.returncode == 125
    assert "invalid ulimit type: bogus" in proc.stderr


def test_namespaced_sysctl_is_set(dockyard):
    proc = run(
        dockyard, "--sysctl", "kernel.shmmax=65536", "busybox", "cat", "/proc/sys/kernel/shmmax"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "65536"


def test_host_sysctl_is_refused_by_name(dockyard):
    before = Path("/proc/sys/vm/swappiness").read_text()
    proc = run(dockyard, "--sysctl", "vm.swappiness=1", "busybox", "true")
    assert proc.returncode == 125
    assert "sysctl 'vm.swappiness' is not whitelisted" in proc.stderr
    assert Path("/proc/sys/vm/swappiness").read_text() == before


def test_shm_size(dockyard):
    proc = run(
        dockyard, "--shm-size", "2m", "busybox", "sh", "-c", "grep ' /dev/shm ' /proc/mounts"
    )
    assert proc.returncode == 0, proc.stderr
    assert "size=2048k" in proc.stdout


def test_pid_host_sees_host_processes(dockyard):
    proc = run(
        dockyard, "--pid", "host", "busybox", "sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"
    )
    assert proc.returncode == 0, proc.stderr
    own_pid, count = proc.stdout.split()
    assert own_pid != "1"
    assert int(count) > 5


def test_uts_host_keeps_the_host_name(dockyard):
    proc = run(dockyard, "--uts", "host", "busybox", "hostname")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == os.uname().nodename
    both = run(dockyard, "--uts", "host", "-h", "other", "busybox", "hostname")
    assert both.returncode == 125
    assert "conflicting options: hostname and the UTS mode" in both.stderr


def test_ipc_and_pid_of_another_container(dockyard, unique):
    name = unique("ns")
    first = dockyard(
        "run", "-d", "--name", name, "busybox", "sh", "-c",
        "readlink /proc/self/ns/ipc; echo shared > /dev/shm/x; sleep 60",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    try:
        proc = run(
            dockyard, "--ipc", f"container:{name}", "--pid", f"container:{name}", "busybox",
            "sh", "-c", "readlink /proc/self/ns/ipc; ps -o comm | grep -c sleep; cat /dev/shm/x",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        ipc_ns, sleeps, shm = proc.stdout.split()
        assert sleeps == "1"  # the other container's process, seen through its pid namespace
        assert shm == "shared"  # and its /dev/shm
        assert dockyard("logs", name).stdout.strip() == ipc_ns
        own = run(dockyard, "busybox", "readlink", "/proc/self/ns/ipc")
        assert own.stdout.strip() != ipc_ns
    finally:
        dockyard("rm", "-f", name)


def test_init_reaps_and_is_pid_one(dockyard):
    if not any(os.path.exists(p) for p in ("/usr/bin/tini-static", "/usr/bin/docker-init")):
        pytest.skip("tini is not installed")
    proc = run(
        dockyard,
        "--init",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    )
    assert proc.returncode == 0, proc.stderr
    cmdline, own = proc.stdout.splitlines()
    assert cmdline.startswith("/sbin/docker-init -- sh")
    assert own != "1"


def test_oom_score_adj_and_group_add(dockyard):
    proc = run(
        dockyard, "--oom-score-adj", "500", "--group-add", "1234", "--group-add", "audio",
        "busybox", "sh", "-c", "cat /proc/self/oom_score_adj; id -G",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    adj, groups = proc.stdout.splitlines()
    assert adj == "500"
    assert "1234" in groups.split()
    assert "29" in groups.split()  # busybox's audio group
    bad = run(dockyard, "--oom-score-adj", "5000", "busybox", "true")
    assert bad.returncode == 125
    assert "range for oom score adj is [-1000, 1000]" in bad.stderr


def _cgroup_file(dockyard, controller: str, name: str, *flags: str) -> str:
    script = f"cat /sys/fs/cgroup/{controller}/{name}"
    proc = run(dockyard, *flags, "busybox", "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_cpu_limits_reach_the_cgroup(dockyard):
    if not os.path.exists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
        pytest.skip("no cgroup v1 cpu controller")
    assert _cgroup_file(dockyard, "cpu", "cpu.cfs_quota_us", "--cpus", "0.5") == "50000"
    assert _cgroup_file(dockyard, "cpu", "cpu.cfs_period_us", "--cpus", "0.5") == "100000"
    assert (
        _cgroup_file(
            dockyard, "cpu", "cpu.cfs_quota_us", "--cpu-quota", "20000", "--cpu-period", "50000"
        )
        == "20000"
    )
    assert _cgroup_file(dockyard, "cpu", "cpu.shares", "--cpu-shares", "512") == "512"


def test_cpuset_and_memory_reservation(dockyard):
    if not os.path.exists("/sys/fs/cgroup/cpuset/cpuset.cpus"):
        pytest.skip("no cgroup v1 cpuset controller")
    assert _cgroup_file(dockyard, "cpuset", "cpuset.cpus", "--cpuset-cpus", "0") == "0"
    got = _cgroup_file(
        dockyard, "memory", "memory.soft_limit_in_bytes", "--memory-reservation", "64m"
    )
    assert got == str(64 << 20)


def test_unavailable_cpus_are_refused(dockyard):
    proc = run(dockyard, "--cpuset-cpus", "0-511", "busybox", "true")
    assert proc.returncode == 125
    assert "Requested CPUs are not available" in proc.stderr


def test_blkio_weight_is_enforced_or_refused(dockyard):
    knob = next(
        (
            f
            for f in ("blkio.weight", "blkio.bfq.weight")
            if os.path.exists(f"/sys/fs/cgroup/blkio/{f}")
        ),
        None,
    )
    proc = run(dockyard, "--blkio-weight", "300", "busybox", "sh", "-c", "true")
    if knob is None:
        assert proc.returncode == 125
        assert "cannot be enforced on this host" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr


def test_privileged_has_all_caps_host_devices_no_seccomp_rw_sys(dockyard):
    proc = run(
        dockyard, "--privileged", "busybox", "sh", "-c",
        "cat /proc/self/status; ls /dev; grep ' /sys ' /proc/mounts",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert status_field(proc.stdout, "Seccomp") == "0"
    # Every capability the daemon holds (as dockerd: what there is).
    host_bounding = int(status_field(Path("/proc/self/status").read_text(), "CapBnd"), 16)
    assert int(status_field(proc.stdout, "CapEff"), 16) == host_bounding
    host_devs = {n for n in os.listdir("/dev") if n.startswith(("loop", "sd", "vd", "nvme"))}
    for name in host_devs:
        assert f"\n{name}\n" in proc.stdout
    sys_line = [line for line in proc.stdout.splitlines() if " /sys " in line][0]
    assert " rw," in sys_line


def test_stop_signal_is_used_by_stop(dockyard, unique):
    name = unique("sig")
    started = dockyard(
        "run", "-d", "--name", name, "--stop-signal", "USR1", "busybox", "sh", "-c",
        "trap 'echo got-usr1; exit 0' USR1; while true; do sleep 0.1; done",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        assert dockyard("stop", "-t", "5", name).returncode == 0
        logs = dockyard("logs", name)
        assert "got-usr1" in logs.stdout
    finally:
        dockyard("rm", "-f", name)


def _cgroup_value(controller: str, cid: str, name: str) -> str:
    found = [p for p in Path("/sys/fs/cgroup", controller).rglob(name) if p.parent.name == cid]
    assert len(found) == 1, found
    return found[0].read_text().strip()


def test_update_a_running_container(dockyard, unique):
    name = unique("upd")
    started = dockyard("run", "-d", "--name", name, "--memory", "64m", "busybox", "sleep", "60")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        assert _cgroup_value("memory", cid, "memory.limit_in_bytes") == str(64 << 20)
        proc = dockyard(
            "update", "--memory", "128m", "--memory-swap", "256m", "--cpus", "0.5",
            "--pids-limit", "50", "--memory-reservation", "32m", name,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == name
        assert _cgroup_value("memory", cid, "memory.limit_in_bytes") == str(128 << 20)
        assert _cgroup_value("memory", cid, "memory.soft_limit_in_bytes") == str(32 << 20)
        assert _cgroup_value("cpu", cid, "cpu.cfs_quota_us") == "50000"
        assert _cgroup_value("pids", cid, "pids.max") == "50"
        # cpuset was not joined at start: applies from the next start, and says so.
        later = dockyard("update", "--cpuset-cpus", "0", name)
        assert later.returncode == 0, later.stderr
        assert "WARNING: cpuset.cpus applies from the next start" in later.stderr
        bad = dockyard("update", "--memory", "1m", name)
        assert bad.returncode == 1
        assert "Minimum memory limit allowed is 6MB" in bad.stderr
        assert _cgroup_value("memory", cid, "memory.limit_in_bytes") == str(128 << 20)
        none = dockyard("update", name)
        assert none.returncode != 0
        assert "you must provide one or more flags" in none.stderr
    finally:
        dockyard("rm", "-f", name)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--sysctl", "net.ipv4.no_such_knob=1"), "sysctl net.ipv4.no_such_knob=1: No such file"),
        (("--ulimit", "nofile=4294967296:4294967296"), "ulimit RLIMIT_NOFILE="),
    ],
)
def test_start_failure_names_the_field_and_leaves_nothing(dockyard, unique, flags, words):
    name = unique("bad")
    proc = dockyard("run", "--name", name, *flags, "busybox", "true")
    assert proc.returncode != 0
    assert words in proc.stderr
    cid = dockyard("inspect", "--format", "{{.Id}}", name).stdout.strip()
    try:
        assert cid
        leftovers = [
            str(p) for p in Path("/sys/fs/cgroup").glob(f"*/dockyard*/{cid}") if p.is_dir()
        ]
        assert leftovers == []
        assert cid not in Path("/proc/self/mountinfo").read_text()
        assert not [
            pid for pid in os.listdir("/proc")
            if pid.isdigit() and cid in _cmdline(pid)
        ]  # fmt: skip
    finally:
        dockyard("rm", "-f", name)


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
