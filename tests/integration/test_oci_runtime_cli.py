"""dockyard-runtime on its own, as a user of runc would drive it: the OCI lifecycle
(created -> running -> stopped), hooks, exec, pause, update, and bad bundles.

Needs root. Each test makes a bundle over a busybox rootfs (a plain directory,
as `runc spec` expects), a private --root, and checks at the end that nothing
is left: no runtime state, no cgroup, no process, no mount.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import REPO, mounts_under, processes_mentioning

from dockyard.runtime.seccomp import CACHE_DIR_NAME, default_profile
from dockyard.runtime.spec import DEFAULT_CAPABILITIES

CONTROLLERS = ("memory", "pids", "cpu", "freezer", "devices")


@pytest.fixture
def rt(tmp_path: Path, unique) -> object:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers need namespaces, mounts and cgroups")
    r = Runtime(tmp_path, unique("oci"))
    yield r
    r.cleanup_and_check()


class Runtime:
    def __init__(self, tmp: Path, prefix: str) -> None:
        self.tmp = tmp
        self.prefix = prefix
        self.root = tmp / "state"
        self.ids: list[str] = []
        self.bundle = tmp / "bundle"
        rootfs = self.bundle / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
        for applet in ("sh", "echo", "cat", "sleep", "id", "readlink", "ls", "true"):
            (rootfs / "bin" / applet).symlink_to("busybox")
        for d in ("proc", "sys", "dev", "tmp"):
            (rootfs / d).mkdir()
        assert self.cli("spec", "--bundle", str(self.bundle)).returncode == 0

    def new_id(self) -> str:
        cid = f"{self.prefix}-{len(self.ids)}"
        self.ids.append(cid)
        return cid

    def config(self, args: list[str], **changes: object) -> Path:
        path = self.bundle / "config.json"
        spec = json.loads(path.read_text())
        spec["process"]["args"] = args
        spec["process"]["terminal"] = False
        spec["root"]["readonly"] = False
        for key, value in changes.items():
            spec[key] = value
        path.write_text(json.dumps(spec))
        return path

    def cli(
        self, *args: str, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dockyard.runtime.oci_cli", "--root", str(self.root), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
            stdin=subprocess.DEVNULL,
        )

    def create(self, cid: str, *extra: str) -> subprocess.CompletedProcess[str]:
        # The init keeps create's stdio: give it files, so nothing waits on a pipe's EOF.
        out_path, err_path = self.tmp / f"{cid}.out", self.tmp / f"{cid}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dockyard.runtime.oci_cli",
                    "--root",
                    str(self.root),
                    "create",
                    "--bundle",
                    str(self.bundle),
                    *extra,
                    cid,
                ],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                timeout=60,
                env={**os.environ, "PYTHONPATH": str(REPO / "src")},
            )
        return subprocess.CompletedProcess(proc.args, proc.returncode, "", err_path.read_text())

    def output(self, cid: str) -> str:
        return (self.tmp / f"{cid}.out").read_text()

    def state(self, cid: str) -> dict:
        proc = self.cli("state", cid)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def wait_status(self, cid: str, want: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(cid)
            if st["status"] == want or time.monotonic() > deadline:
                return st
            time.sleep(0.05)

    def cleanup_and_check(self) -> None:
        for cid in self.ids:
            self.cli("delete", "--force", cid)
        problems = []
        left = sorted(os.listdir(self.root)) if self.root.exists() else []
        # Compiled seccomp programs, shared by the containers of this --root (not theirs).
        left = [name for name in left if name != CACHE_DIR_NAME]
        if left:
            problems.append(f"runtime state left: {left}")
        for cid in self.ids:
            for controller in CONTROLLERS:
                if (Path("/sys/fs/cgroup") / controller / cid).exists():
                    problems.append(f"cgroup left: {controller}/{cid}")
        for pid, cmd in processes_mentioning(str(self.tmp)).items():
            problems.append(f"process {pid} left: {cmd}")
            os.kill(pid, signal.SIGKILL)
        for point in mounts_under(str(self.tmp)):
            problems.append(f"mount left: {point}")
            subprocess.run(["umount", "-l", point], check=False)
        assert not problems, problems


def test_lifecycle_created_running_stopped_with_every_hook(rt: Runtime) -> None:
    log = rt.tmp / "hooks.log"

    def hook(kind: str) -> dict:
        # Each hook appends its kind and the state it was given on stdin.
        return {"path": "/bin/sh", "args": ["sh", "-c", f'echo "{kind} $(cat)" >> {log}']}

    hooks = {k: [hook(k)] for k in ("prestart", "createRuntime", "poststart", "poststop")}
    # These two run inside the container: startContainer after pivot_root, so it
    # writes into the container's root (the bundle's rootfs directory here).
    hooks["createContainer"] = [hook("createContainer")]
    hooks["startContainer"] = [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer > /started-hook"]}
    ]
    rt.config(["sh", "-c", "echo running as $$; exec sleep 300"], hooks=hooks)
    cid = rt.new_id()
    created = rt.create(cid, "--pid-file", str(rt.tmp / "pid"))
    assert created.returncode == 0, created.stderr
    pid = int((rt.tmp / "pid").read_text())
    st = rt.state(cid)
    assert st["status"] == "created" and st["pid"] == pid
    assert st["bundle"] == str(rt.bundle)
    # Created: the init waits before exec; the command has not run.
    time.sleep(0.2)
    assert rt.output(cid) == ""
    assert not (rt.bundle / "rootfs" / "started-hook").exists()
    assert rt.cli("start", cid).returncode == 0
    assert rt.wait_status(cid, "running")["status"] == "running"
    deadline = time.monotonic() + 10
    while rt.output(cid) == "" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rt.output(cid) == "running as 1\n"
    assert (rt.bundle / "rootfs" / "started-hook").read_text() == "startContainer\n"
    second = rt.cli("start", cid)
    assert second.returncode == 1 and "already running" in second.stderr
    refused = rt.cli("delete", cid)
    assert refused.returncode == 1 and "not stopped: running" in refused.stderr
    assert rt.cli("kill", cid, "KILL").returncode == 0
    assert rt.wait_status(cid, "stopped")["status"] == "stopped"
    again = rt.cli("kill", cid, "9")
    assert again.returncode == 1 and "container not running" in again.stderr
    assert rt.cli("delete", cid).returncode == 0
    missing = rt.cli("state", cid)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    lines = log.read_text().splitlines()
    kinds = [line.split(" ", 1)[0] for line in lines]
    assert kinds == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    states = [json.loads(line.split(" ", 1)[1]) for line in lines]
    assert [s["status"] for s in states] == [
        "creating",
        "creating",
        "creating",
        "running",
        "stopped",
    ]
    assert all(s["id"] == cid for s in states)
    assert states[0]["pid"] == pid


def test_exec_process_json_exit_code_and_namespaces(rt: Runtime) -> None:
    rt.config(["sleep", "300"])
    cid = rt.new_id()
    assert rt.create(cid).returncode == 0
    assert rt.cli("start", cid).returncode == 0
    pid = rt.state(cid)["pid"]
    process = {
        "args": ["sh", "-c", "readlink /proc/self/ns/mnt; id -u; exit 5"],
        "env": ["PATH=/bin"],
        "cwd": "/tmp",
        "user": {"uid": 1000, "gid": 1000},
    }
    pfile = rt.tmp / "process.json"
    pfile.write_text(json.dumps(process))
    ex = rt.cli("exec", "--process", str(pfile), cid)
    assert ex.returncode == 5, ex.stderr
    assert ex.stdout.split() == [os.readlink(f"/proc/{pid}/ns/mnt"), "1000"]
    plain = rt.cli("exec", cid, "sh", "-c", "echo $$ >/dev/null; echo ok")
    assert (plain.returncode, plain.stdout) == (0, "ok\n")
    missing = rt.cli("exec", cid, "no-such-tool")
    assert missing.returncode == 1
    assert 'exec: "no-such-tool": executable file not found in $PATH' in missing.stderr
    tty = rt.cli("exec", "-t", cid, "sh")
    assert tty.returncode == 1 and "--console-socket is required" in tty.stderr
    ps = rt.cli("ps", "--format", "json", cid)
    assert json.loads(ps.stdout) == [pid]
    # runc's table: the host's `ps -ef` (or the given ps arguments) cut to the container
    table = rt.cli("ps", cid).stdout.splitlines()
    assert table[0].split()[:2] == ["UID", "PID"], table
    assert [line.split()[1] for line in table[1:]] == [str(pid)], table
    custom = rt.cli("ps", cid, "--", "-o", "pid,comm").stdout.splitlines()
    assert [line.split() for line in custom[1:]] == [[str(pid), "sleep"]], custom


def test_a_start_container_hook_alone_runs(rt: Runtime) -> None:
    """startContainer hooks run inside the container after pivot_root, where neither
    the host's Python library nor ours is: what they need is loaded before."""
    hooks = {
        "startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer > /started-hook"]}
        ]
    }
    rt.config(["sh", "-c", "cat /started-hook"], hooks=hooks)
    done = rt.cli("run", "--bundle", str(rt.bundle), rt.new_id())
    assert (done.returncode, done.stdout) == (0, "startContainer\n"), done.stderr


def _linux_with_seccomp(rt: Runtime, profile: dict) -> dict:
    linux = json.loads((rt.bundle / "config.json").read_text())["linux"]
    return {**linux, "seccomp": profile}


STATUS = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"


def test_a_seccomp_profile_is_enforced_and_compiled_once_per_profile(rt: Runtime) -> None:
    """A bundle from elsewhere (containerd's, Kubernetes' RuntimeDefault) carries
    linux.seccomp without our compiled annotation: create compiles it before the
    init leaves the host's filesystem, once; later containers read the program."""
    for applet in ("mkdir", "rmdir"):
        (rt.bundle / "rootfs" / "bin" / applet).symlink_to("busybox")
    docker_default = default_profile(DEFAULT_CAPABILITIES)
    rt.config(
        ["sh", "-c", f"{STATUS}; mkdir /tmp/made && rmdir /tmp/made && echo made"],
        linux=_linux_with_seccomp(rt, docker_default),
    )
    first = rt.cli("run", "--bundle", str(rt.bundle), rt.new_id())
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["NoNewPrivs:", "1", "Seccomp:", "2", "made"]
    cache = rt.root / CACHE_DIR_NAME
    (program,) = cache.iterdir()
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    written = program.stat().st_mtime_ns
    again = rt.cli("run", "--bundle", str(rt.bundle), rt.new_id())
    assert (again.returncode, again.stdout) == (0, first.stdout), again.stderr
    assert program.stat().st_mtime_ns == written  # read, not compiled again

    # Another profile is another program: mkdir refused by this one only.
    no_mkdir = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }
    rt.config(
        ["sh", "-c", "mkdir /tmp/made || echo refused"],
        linux=_linux_with_seccomp(rt, no_mkdir),
    )
    refused = rt.cli("run", "--bundle", str(rt.bundle), rt.new_id())
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.strip().endswith("refused")
    assert "Operation not permitted" in refused.stderr
    assert len(list(cache.iterdir())) == 2

    # A torn cache entry (a crash mid-write on an old kernel) is compiled again.
    program.write_bytes(program.read_bytes()[:5])
    rt.config(
        ["sh", "-c", f"{STATUS}; mkdir /tmp/made && rmdir /tmp/made && echo made"],
        linux=_linux_with_seccomp(rt, docker_default),
    )
    torn = rt.cli("run", "--bundle", str(rt.bundle), rt.new_id())
    assert (torn.returncode, torn.stdout) == (0, first.stdout), torn.stderr
    assert program.stat().st_size % 8 == 0 and program.stat().st_size > 5


def test_the_installed_launcher_compiles_a_profile_without_site_packages(rt: Runtime) -> None:
    """scripts/install.sh's launcher runs `python -IS` (no site-packages): a cache miss
    still finds libseccomp's binding, and the program is enforced."""
    launcher = rt.tmp / "dockyard-runtime"
    launcher.write_text(
        f"#!{sys.executable} -IS\nimport sys\nsys.path.insert(0, {str(REPO / 'src')!r})\n"
        "from dockyard.runtime.oci_cli import entry\nentry()\n"
    )
    launcher.chmod(0o755)
    rt.config(
        ["sh", "-c", STATUS], linux=_linux_with_seccomp(rt, default_profile(DEFAULT_CAPABILITIES))
    )
    argv = [str(launcher), "--root", str(rt.root), "run", "--bundle", str(rt.bundle)]
    done = subprocess.run([*argv, rt.new_id()], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["NoNewPrivs:", "1", "Seccomp:", "2"]
    assert len(list((rt.root / CACHE_DIR_NAME).iterdir())) == 1


def test_exec_gets_the_containers_seccomp_profile(rt: Runtime) -> None:
    profile = default_profile(DEFAULT_CAPABILITIES)
    rt.config(["sleep", "300"], linux=_linux_with_seccomp(rt, profile))
    cid = rt.new_id()
    assert rt.create(cid).returncode == 0
    assert rt.cli("start", cid).returncode == 0
    ex = rt.cli("exec", cid, "sh", "-c", STATUS)
    assert ex.returncode == 0, ex.stderr
    assert ex.stdout.split() == ["NoNewPrivs:", "1", "Seccomp:", "2"]


def test_pause_resume_and_update(rt: Runtime) -> None:
    rt.config(["sleep", "300"])
    cid = rt.new_id()
    assert rt.create(cid).returncode == 0
    assert rt.cli("start", cid).returncode == 0
    assert rt.cli("pause", cid).returncode == 0
    assert rt.state(cid)["status"] == "paused"
    assert rt.cli("resume", cid).returncode == 0
    assert rt.state(cid)["status"] == "running"
    assert rt.cli("update", "--memory", "64m", "--pids-limit", "50", cid).returncode == 0
    memory = Path("/sys/fs/cgroup/memory") / cid / "memory.limit_in_bytes"
    assert memory.read_text().strip() == str(64 << 20)
    assert (Path("/sys/fs/cgroup/pids") / cid / "pids.max").read_text().strip() == "50"
    bad = rt.tmp / "res.json"
    bad.write_text(json.dumps({"blockIO": {"weight": 300}}))
    refused = rt.cli("update", "--resources", str(bad), cid)
    assert refused.returncode == 1
    assert "resources.blockIO" in refused.stderr


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no-rootfs", "rootfs"),
        ("truncated", "invalid JSON"),
        ("no-config", "no config.json"),
        ("unknown-namespace", "namespace"),
        ("missing-command", "executable file not found"),
        ("bad-hook", "hooks.prestart[0]"),
        ("failing-hook", "error running createRuntime hook #0"),
    ],
)
def test_a_bad_bundle_is_one_clear_error_and_leaves_nothing(
    rt: Runtime, breakage: str, message: str
) -> None:
    path = rt.config(["sleep", "300"])
    if breakage == "no-rootfs":
        shutil.rmtree(rt.bundle / "rootfs")
    elif breakage == "truncated":
        path.write_text(path.read_text()[:100])
    elif breakage == "no-config":
        path.unlink()
    elif breakage == "unknown-namespace":
        spec = json.loads(path.read_text())
        spec["linux"]["namespaces"].append({"type": "time-travel"})
        path.write_text(json.dumps(spec))
    elif breakage == "missing-command":
        rt.config(["no-such-command"])
    elif breakage == "bad-hook":
        rt.config(["sleep", "300"], hooks={"prestart": [{"path": "relative/hook"}]})
    elif breakage == "failing-hook":
        rt.config(["sleep", "300"], hooks={"createRuntime": [{"path": "/bin/false"}]})
    cid = rt.new_id()
    out = rt.create(cid)
    assert out.returncode == 1
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    # Nothing of it remains: no state, and (checked at teardown) no cgroup, process or mount.
    assert rt.cli("list", "-q").stdout == ""


def test_ids_globals_and_refusals(rt: Runtime) -> None:
    rt.config(["sleep", "300"])
    for bad in ("../escape", "a/b", ".."):
        out = rt.cli("create", "--bundle", str(rt.bundle), bad)
        assert out.returncode == 1 and "invalid container id" in out.stderr, bad
    cid = rt.new_id()
    assert rt.create(cid).returncode == 0
    twice = rt.create(cid)
    assert twice.returncode == 1 and f"container with id exists: {cid}" in twice.stderr
    listed = json.loads(rt.cli("list", "--format", "json").stdout)
    assert [(c["id"], c["status"]) for c in listed] == [(cid, "created")]
    systemd = rt.cli("--systemd-cgroup", "state", cid)
    assert systemd.returncode == 1 and "--systemd-cgroup is not supported" in systemd.stderr
    version = rt.cli("--version")
    assert (
        version.stdout.startswith("dockyard-runtime version ") and "spec: 1.0.2" in version.stdout
    )
    features = json.loads(rt.cli("features").stdout)
    assert "createRuntime" in features["hooks"] and features["linux"]["cgroup"]["v1"] is True
    exists = rt.cli("spec", "--bundle", str(rt.bundle))
    assert exists.returncode == 1 and "exists" in exists.stderr
    log = rt.tmp / "log.json"
    out = rt.cli("--log", str(log), "--log-format", "json", "kill", "nope")
    assert out.returncode == 1
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["level"] == "error" and "nope does not exist" in record["msg"]
    # delete --force of a created container kills its waiting init.
    pid = rt.state(cid)["pid"]
    assert rt.cli("delete", "--force", cid).returncode == 0
    assert (
        not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )
