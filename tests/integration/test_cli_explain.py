"""`dockyard explain`: the script it prints builds the same container by hand.

The script is run for real, as root, and the process it makes is compared with
the one the runtime made: hostname, pid namespace, mount table, capabilities,
environment, network view. Then nothing it made may be left on the host.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest


def _status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _mounts(pid: int) -> list[tuple[str, ...]]:
    """(mount point, root within its fs, fstype, mount options, fs options) per mount:
    what the process sees, without the ids and device numbers that differ by instance."""
    rows = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        f = left.split()
        fstype, _source, super_opts = right.split(" ", 2)
        # overlayfs (uuid=auto) records a uuid in the upper dir at its first mount and
        # shows uuid=on at every later one: the script's mount is this upper dir's second.
        super_opts = super_opts.replace(",uuid=on", "")
        rows.append((f[4], f[3], fstype, f[5], super_opts))
    return sorted(rows)


def _run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _cgroup_value(cid: str, controller: str, name: str) -> str:
    return Path(f"/sys/fs/cgroup/{controller}/dockyard/{cid}/{name}").read_text().strip()


def _view(pid: int, cid: str) -> dict[str, object]:
    """What a user of the container would notice, seen from the host."""
    status = _status(pid)
    addrs = [
        " ".join(line.split()[1:4])
        for line in _run("nsenter", "-t", str(pid), "-n", "ip", "-o", "-4", "addr").splitlines()
    ]
    links = _run("nsenter", "-t", str(pid), "-n", "ip", "-o", "link")
    return {
        "hostname": _run("nsenter", "-t", str(pid), "-u", "hostname").strip(),
        "pid in its namespace": status["NSpid"].split()[-1],
        "pids it sees": sorted(p for p in os.listdir(f"/proc/{pid}/root/proc") if p.isdigit()),
        "mounts": _mounts(pid),
        "caps": {k: status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
        "no_new_privs": status["NoNewPrivs"],
        "uid/gid": (status["Uid"], status["Gid"], status["Groups"]),
        "env": sorted(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")),
        "cmdline": Path(f"/proc/{pid}/cmdline").read_bytes(),
        "fds": sorted(os.listdir(f"/proc/{pid}/fd")),
        "addresses": addrs,
        "macs": re.findall(r"link/ether (\S+)", links),
        "routes": _run("nsenter", "-t", str(pid), "-n", "ip", "route").splitlines(),
        "cwd": os.readlink(f"/proc/{pid}/cwd"),
        "session leader": Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3]
        == str(pid),
        "oom_score_adj": Path(f"/proc/{pid}/oom_score_adj").read_text().strip(),
        "open files limit": [
            line
            for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
            if line.startswith("Max open files")
        ],
        "memory limit": _cgroup_value(cid, "memory", "memory.limit_in_bytes"),
        "pids limit": _cgroup_value(cid, "pids", "pids.max"),
        "in its cgroups": all(
            str(pid) in _cgroup_value(cid, c, "cgroup.procs").split()
            for c in ("memory", "cpu", "pids", "devices", "freezer")
        ),
    }


def _host_state(cid: str, script: str) -> dict[str, object]:
    """What the script may change on the host, and must put back: its namespace, its
    veths, the rules in this daemon's chains, the container's cgroups and mounts
    (other tests change the rest of the host meanwhile)."""
    names = set(re.findall(r"-N (DOCKYARD-[\w-]+)", script))
    names |= set(re.findall(r"ip link add (\S+) mtu \d+ type bridge", script))
    rules = {
        table: sorted(
            line
            for line in _run("iptables", "-t", table, "-S").splitlines()
            if any(n in line for n in names)
        )
        for table in ("filter", "nat")
    }
    return {
        "netns": sorted(n for n in _run("ip", "netns", "list").split() if n.startswith("dky-")),
        "veths": sorted(
            re.findall(r"^\d+: (vx[^:@]+)", _run("ip", "-o", "link"), flags=re.MULTILINE)
        ),
        "rules": rules,
        "cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob(f"*/dockyard/{cid}")),
        "mounts": sorted(
            line for line in Path("/proc/self/mountinfo").read_text().splitlines() if cid in line
        ),
    }


def _wait_for(pred, timeout: float = 60, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def _script_init(cid: str) -> int | None:
    """The pid of the script's container once it runs its command."""
    procs = Path(f"/sys/fs/cgroup/memory/dockyard/{cid}/cgroup.procs")
    try:
        pids = [int(p) for p in procs.read_text().split()]
    except (OSError, ValueError):
        return None
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                return pid
        except OSError:
            continue
    return None


SCENARIOS = {
    # The default bridge, a published port, the usual options.
    "bridge": [
        "-p", "127.0.0.1::80", "--hostname", "handmade", "-e", "GREETING=hello world",
        "-w", "/tmp",
    ],
    # No network, another user, fewer capabilities, limits, a read-only root.
    "confined": [
        "--network", "none", "-u", "1000:1000", "--cap-drop", "ALL",
        "--cap-add", "NET_BIND_SERVICE", "--security-opt", "no-new-privileges",
        "--read-only", "--tmpfs", "/scratch", "--ulimit", "nofile=100:200",
        "-m", "64m", "--pids-limit", "50", "--sysctl", "net.ipv4.ip_unprivileged_port_start=0",
    ],
    # A user-defined network (made by the test), with an alias.
    "usernet": ["--network", "{net}", "--network-alias", "web"],
}  # fmt: skip


@pytest.mark.skipif(not Path("/sys/fs/cgroup/memory").is_dir(), reason="cgroup v1 host")
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_explain_script_builds_the_same_container(dockyard, inspect, unique, scenario):
    name = unique("explain")
    net = unique("explainnet")
    flags = SCENARIOS[scenario]
    if scenario == "usernet":
        made = dockyard("network", "create", net)
        assert made.returncode == 0, made.stderr
        flags = [f.format(net=net) for f in flags]
    proc = dockyard(
        "run", "-d", "--name", name, *flags, "busybox", "sleep", "1000",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cid = proc.stdout.strip()
    script_proc = None
    try:
        real = _view(inspect(name)["State"]["Pid"], cid)
        proc = dockyard("explain", name)
        assert proc.returncode == 0, proc.stderr
        script = proc.stdout
        assert script.startswith("#!/bin/sh\n")
        for needed in ("unshare ", "pivot_root . .", "mount -t overlay", "setpriv "):
            assert needed in script, needed
        assert "seccomp" in script and "NOT done here" in script
        assert dockyard("stop", "-t", "1", name).returncode == 0
        before = _host_state(cid, script)
        bridged = scenario == "bridge"
        assert bool(before["rules"]["nat"]) == (scenario != "confined"), "the daemon's chains"
        if scenario == "usernet":
            assert "127.0.0.11:53" in script and "NOT done here" in script

        script_proc = subprocess.Popen(
            ["sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        pid = _wait_for(lambda: _script_init(cid) or script_proc.poll() is not None, what="init")
        assert script_proc.poll() is None, script_proc.communicate()
        assert isinstance(pid, int)
        made = _view(pid, cid)
        during = _host_state(cid, script)
        if bridged:
            # Its published port is DNATed to it, by the rule the script added.
            assert any("DNAT --to-destination" in r for r in during["rules"]["nat"]), during
            assert not any("DNAT --to-destination" in r for r in before["rules"]["nat"])
        seccomp = (_status(pid)["Seccomp"], "2")
        for key in real:
            if isinstance(real[key], list):
                only = sorted(set(map(str, made[key])) ^ set(map(str, real[key])))
                assert made[key] == real[key], (key, only)
            assert made[key] == real[key], key
        # The script says it cannot load the seccomp filter, and it does not.
        assert seccomp == ("0", "2")

        os.kill(pid, signal.SIGKILL)
        script_proc.wait(timeout=60)
        assert _host_state(cid, script) == before
    finally:
        if script_proc is not None and script_proc.poll() is None:
            os.killpg(script_proc.pid, signal.SIGTERM)
            try:
                script_proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(script_proc.pid, signal.SIGKILL)
                script_proc.wait()
        # Whatever a failure before the script's own cleanup left.
        subprocess.run(["ip", "netns", "del", f"dky-{cid[:12]}"], capture_output=True)
        for cg in Path("/sys/fs/cgroup").glob(f"*/dockyard/{cid}"):
            _wait_for(lambda cg=cg: _rmdir(cg), timeout=10, what=f"rmdir {cg}")
        dockyard("rm", "-f", name)
        if scenario == "usernet":
            dockyard("network", "rm", net)


def test_explain_run_prints_a_script_for_a_new_container(dockyard, unique):
    name = unique("explainrun")
    proc = dockyard(
        "explain", "run", "--name", name, "--network", "none", "--read-only",
        "--tmpfs", "/scratch", "--ulimit", "nofile=100:200", "-u", "1000:1000",
        "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE",
        "--security-opt", "no-new-privileges", "busybox", "id",
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        script = proc.stdout
        assert dockyard("inspect", name).returncode == 1  # made for the script, removed again
        # What the flags asked for, in the script.
        assert "--bounding-set -all,+net_bind_service" in script
        assert "--reuid 1000 --regid 1000" in script
        assert "--nnp" in script
        assert "prlimit --pid $$ --nofile=100:200" in script
        assert 'mount -o remount,bind,ro "$ROOT"' in script
        assert '"$ROOT/scratch"' in script
        assert "unshare --mount --propagation private --uts --ipc --net --pid" in script
        assert "ip netns add" not in script  # --network none: loopback only
        # Valid POSIX shell, the inside part too.
        syntax = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
        inside = script.split("<<'DOCKYARD_INSIDE'\n", 1)[1].split("\nDOCKYARD_INSIDE\n", 1)[0]
        syntax = subprocess.run(["sh", "-n", "-c", inside], capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
    finally:
        dockyard("rm", "-f", name)


def test_explain_of_an_unknown_container_is_a_clear_error(daemon, dockyard):
    proc = dockyard("explain", "no-such-container")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error response from daemon: No such container: no-such-container"
    resp = daemon.request("GET", "/containers/no-such-container/explain")
    assert resp.status == 404
    # The daemon keeps serving.
    assert dockyard("ps").returncode == 0


def test_explain_takes_one_container(dockyard):
    proc = dockyard("explain", "a", "b")
    assert proc.returncode == 1
    assert "one container" in proc.stderr


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--network", "host"], "--- network: --network host"),
        (["--privileged"], "--bounding-set -all,+chown,"),
        (["-t"], "this script keeps the terminal it runs in"),
        (["--device", "/dev/null:/dev/mynull"], 'mknod -m 666 "${ROOT}/dev/mynull" c 1 3'),
        (["--init"], "/sbin/docker-init"),
        (["-v", "/tmp:/hosttmp:ro"], "mount -o remount,bind,ro"),
    ],
)
def test_explain_run_scripts_are_valid_shell(dockyard, unique, flags, expected):
    name = unique("explainsyn")
    proc = dockyard("explain", "run", "--name", name, *flags, "busybox", "true")
    try:
        assert proc.returncode == 0, proc.stderr
        assert expected in proc.stdout
        inside = proc.stdout.split("<<'DOCKYARD_INSIDE'\n", 1)[1].split("\nDOCKYARD_INSIDE\n")[0]
        for part in (proc.stdout, inside):
            syntax = subprocess.run(["sh", "-n", "-c", part], capture_output=True, text=True)
            assert syntax.returncode == 0, syntax.stderr
    finally:
        dockyard("rm", "-f", name)


def _counts(dockyard) -> tuple[int, int]:
    containers = dockyard("ps", "-aq").stdout.split()
    volumes = dockyard("volume", "ls", "-q").stdout.split()
    return len(containers), len(volumes)


def test_explain_run_leaves_nothing_and_its_script_runs_without_the_container(dockyard, unique):
    """explain run removes the container it made (and its anonymous volume); the
    script makes a bundle of its own, runs the command, and leaves nothing either."""
    before = _counts(dockyard)
    name = unique("explaingone")
    proc = dockyard(
        "explain", "run", "--name", name, "--network", "none", "-v", "/data", "busybox",
        "sh", "-c", "echo made > /data/f && cat /data/f /etc/hostname",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert _counts(dockyard) == before
    assert dockyard("inspect", name).returncode == 1
    tmp_before = set(os.listdir("/tmp"))
    ran = subprocess.run(["sh", "-c", proc.stdout], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[0] == "made"
    assert not {n for n in set(os.listdir("/tmp")) - tmp_before if n.startswith("dockyard-explain")}


@pytest.mark.parametrize(
    "argv",
    [
        ["--name", "{taken}", "busybox", "true"],  # the daemon refuses the create
        ["--memory", "1k", "busybox", "true"],  # below the minimum: refused at create
        ["--pull", "never", "no-such-image-here:1", "true"],
        ["--bogus-flag", "busybox"],
    ],
    ids=["name-taken", "memory-too-small", "no-image", "bad-flag"],
)
def test_a_failing_explain_run_leaves_nothing(dockyard, unique, argv):
    taken = unique("explaintaken")
    assert dockyard("create", "--name", taken, "busybox", "true").returncode == 0
    try:
        before = _counts(dockyard)
        proc = dockyard("explain", "run", *(a.format(taken=taken) for a in argv))
        assert proc.returncode != 0
        assert proc.stdout == ""
        assert _counts(dockyard) == before
    finally:
        dockyard("rm", "-f", taken)
