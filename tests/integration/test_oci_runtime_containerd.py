"""dockyard-runtime driven by containerd's runc shim (io.containerd.runc.v2), as runc is.

A private containerd (its own socket, root, state; no CRI plugin) imports the
test daemon's busybox (`dockyard save`), then `ctr run --runc-binary
dockyard-runtime` runs containers through the shim: output, exit codes,
`ctr task exec`, `ctr task kill`, `ctr task ps`. At the end nothing may be
left: no containerd or shim process, no mount, no cgroup, no runtime state.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import REPO, mounts_under, processes_mentioning

from dockyard.runtime.run_image import preload

CONTAINERD = shutil.which("containerd")
CTR = shutil.which("ctr")
NAMESPACE = "dky"
IMAGE = "docker.io/library/busybox:latest"
RUN_DIR = Path("/run/containerd")

pytestmark = pytest.mark.skipif(
    CONTAINERD is None or CTR is None,
    reason="containerd is not installed (apt-get install containerd; scripts/install.sh --deps)",
)


def write_launcher(path: Path) -> None:
    """dockyard-runtime of this checkout, launched as scripts/install.sh installs it: its
    run path from an image (runtime/run_image.py), here one of the test's own."""
    src = str(REPO / "src")
    image = str(path.with_name("oci-run.image"))
    build = f"import sys; sys.path.insert(0, {src!r}); from dockyard.runtime.run_image import build; build({image!r})"
    subprocess.run([sys.executable, "-IS", "-c", build], check=True)
    check = f"import sys; sys.path.insert(0, {src!r}); from dockyard.runtime.run_image import load; print(load({image!r}))"
    loaded = subprocess.run([sys.executable, "-IS", "-c", check], capture_output=True, text=True)
    assert loaded.stdout.strip() == "True", loaded  # what the shim runs comes from the image
    path.write_text(
        f"#!{sys.executable} -IS\nimport sys\nsys.path.insert(0, {src!r})\n"
        f"{preload(src, image)}"
        "from dockyard.runtime.oci_cli import entry\nentry()\n"
    )
    path.chmod(0o755)


class Containerd:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "c.sock"
        self.runtime = base / "dockyard-runtime"
        self.runc_root = base / "runc-root"
        self.config = base / "config.toml"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        write_launcher(self.runtime)
        self.config.write_text(
            "version = 2\n"
            f'root = "{self.base}/root"\n'
            f'state = "{self.base}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            "[grpc]\n"
            f'  address = "{self.sock}"\n'
            "[ttrpc]\n"
            f'  address = "{self.sock}.ttrpc"\n'
            "[debug]\n"
            f'  address = "{self.base}/debug.sock"\n'
        )
        log = open(self.base / "containerd.log", "wb")  # noqa: SIM115 - lives as long as the daemon
        self.proc = subprocess.Popen(
            [CONTAINERD, "--config", str(self.config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.ctr("version", check=False).returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"containerd did not start:\n{self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.base / "containerd.log").read_text().splitlines()[-30:])
        return ""

    def ctr(
        self, *args: str, check: bool = True, timeout: float = 60, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [CTR, "--address", str(self.sock), "--namespace", NAMESPACE, *args],
            capture_output=True,
            text=input is None,
            timeout=timeout,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ctr {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}\n{self.log_tail()}"
            )
        return proc

    def run(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.ctr(
            "run",
            "--runc-binary",
            str(self.runtime),
            "--runc-root",
            str(self.runc_root),
            *args,
            **kw,  # type: ignore[arg-type]
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cgroups_named(name: str) -> list[str]:
    found = []
    for controller in ("memory", "pids", "cpu", "freezer", "devices"):
        path = Path("/sys/fs/cgroup") / controller / NAMESPACE / name
        if path.exists():
            found.append(str(path))
    return found


@pytest.fixture(scope="module")
def containerd(daemon, tmp_path_factory) -> Iterator[Containerd]:
    base = Path(tempfile.mkdtemp(prefix="dky-ctd-", dir="/tmp"))
    # ctr's fifos and the shims' sockets go under /run/containerd whatever the config.
    run_dir_existed = RUN_DIR.exists()
    c = Containerd(base)
    try:
        c.start()
        archive = base / "busybox.tar"
        saved = daemon.dockyard("save", "-o", str(archive), "busybox:latest")
        assert saved.returncode == 0, saved.stderr
        c.ctr("image", "import", str(archive))
        yield c
    finally:
        problems = []
        with contextlib.suppress(Exception):
            for task in c.ctr("task", "ls", "-q", check=False).stdout.split():
                c.ctr("task", "kill", "-s", "KILL", task, check=False)
                c.ctr("task", "delete", "-f", task, check=False)
            for cont in c.ctr("container", "ls", "-q", check=False).stdout.split():
                c.ctr("container", "rm", cont, check=False)
        c.stop()
        time.sleep(0.5)
        for pid, cmd in processes_mentioning(str(base)).items():
            problems.append(f"process {pid} left: {cmd}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for point in mounts_under(str(base)):
            problems.append(f"still mounted: {point}")
            subprocess.run(["umount", "-l", point], check=False)
        for controller in ("memory", "pids", "cpu", "cpuacct", "freezer", "devices"):
            with contextlib.suppress(OSError):
                (Path("/sys/fs/cgroup") / controller / NAMESPACE).rmdir()
        # The runtime root of the namespace stays (as with runc); no container in it.
        state_dir = c.runc_root / NAMESPACE
        if state_dir.exists() and any(state_dir.iterdir()):
            problems.append(f"runtime state left: {sorted(os.listdir(state_dir))}")
        shutil.rmtree(base, ignore_errors=True)
        if not run_dir_existed:
            for d in (RUN_DIR / "fifo", RUN_DIR / "s", RUN_DIR):
                with contextlib.suppress(OSError):
                    d.rmdir()  # only if empty: anything in it is someone else's
        assert not problems, problems


def test_ctr_run_prints_the_output_and_exit_code(containerd, unique):
    cid = unique("ctd")
    script = "echo hello from $$; for n in mnt net uts ipc; do readlink /proc/self/ns/$n; done"
    out = containerd.run("--rm", IMAGE, cid, "sh", "-c", script)
    # PID 1 of its own pid namespace, and namespaces of its own.
    lines = out.stdout.splitlines()
    assert lines[0] == "hello from 1", out.stdout + out.stderr
    host = [os.readlink(f"/proc/self/ns/{n}") for n in ("mnt", "net", "uts", "ipc")]
    assert len(lines) == 5 and not set(lines[1:]) & set(host), (lines, host)
    failed = containerd.run("--rm", IMAGE, unique("ctd"), "sh", "-c", "exit 7", check=False)
    assert failed.returncode == 7, failed.stderr
    # The container, its cgroups and its runtime state are gone after --rm.
    assert cid not in containerd.ctr("container", "ls", "-q").stdout.split()
    assert cgroups_named(cid) == []
    assert not (containerd.runc_root / NAMESPACE / cid).exists()


def test_missing_command_is_one_clear_error(containerd, unique):
    cid = unique("ctd")
    out = containerd.run("--rm", IMAGE, cid, "no-such-command", check=False)
    assert out.returncode != 0
    assert "executable file not found" in out.stderr
    containerd.ctr("container", "rm", cid, check=False)


def test_task_exec_ps_and_kill(containerd, unique):
    cid = unique("ctd")
    containerd.run("-d", IMAGE, cid, "sleep", "300")
    try:
        row = [line.split() for line in containerd.ctr("task", "ls").stdout.splitlines()[1:]]
        [(_, pid_text, status)] = [r for r in row if r[0] == cid]
        init_pid = int(pid_text)
        assert status == "RUNNING"
        assert Path(f"/proc/{init_pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
        ex = containerd.ctr(
            "task",
            "exec",
            "--exec-id",
            "e1",
            cid,
            "sh",
            "-c",
            "readlink /proc/self/ns/mnt; readlink /proc/self/ns/pid; exit 3",
            check=False,
        )
        # The exec'd process is in the container's namespaces, and its exit code comes back.
        namespaces = [os.readlink(f"/proc/{init_pid}/ns/{n}") for n in ("mnt", "pid")]
        assert ex.stdout.split() == namespaces, ex.stdout + ex.stderr
        assert ex.returncode == 3
        # ctr task ps: the processes of the container's cgroup (the init alone by now).
        ps = containerd.ctr("task", "ps", cid).stdout.splitlines()
        assert [line.split()[0] for line in ps[1:]] == [str(init_pid)], ps
        # ctr task pause/resume: runc pause/resume, seen in the task's status.
        containerd.ctr("task", "pause", cid)
        assert " PAUSED" in containerd.ctr("task", "ls").stdout
        freezer = Path(f"/sys/fs/cgroup/freezer/{NAMESPACE}/{cid}/freezer.state")
        assert freezer.read_text().strip() == "FROZEN"
        containerd.ctr("task", "resume", cid)
        assert " RUNNING" in containerd.ctr("task", "ls").stdout
        assert freezer.read_text().strip() == "THAWED"
        containerd.ctr("task", "kill", "-s", "SIGKILL", cid)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if "STOPPED" in containerd.ctr("task", "ls").stdout:
                break
            time.sleep(0.2)
        listing = containerd.ctr("task", "ls").stdout
        assert "STOPPED" in listing, listing
    finally:
        containerd.ctr("task", "delete", "-f", cid, check=False)
        containerd.ctr("container", "rm", cid, check=False)
    assert cgroups_named(cid) == []


def test_ctr_run_with_a_tty_gets_the_pty_through_the_console_socket(containerd, unique):
    """ctr run -t: the shim passes --console-socket; the pty master must arrive there."""
    cid = unique("ctd")
    ctr = " ".join(
        shlex.quote(a)
        for a in [
            CTR,
            "--address",
            str(containerd.sock),
            "--namespace",
            NAMESPACE,
            "run",
            "-t",
            "--runc-binary",
            str(containerd.runtime),
            "--runc-root",
            str(containerd.runc_root),
            "--rm",
            IMAGE,
            cid,
            "sh",
            "-c",
            "tty; [ -t 0 ] && echo stdin-is-a-tty",
        ]
    )
    # script(1) gives ctr the terminal it wants for -t.
    out = subprocess.run(
        ["script", "-qec", ctr, "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stdout + out.stderr + containerd.log_tail()
    lines = [line.strip() for line in out.stdout.splitlines()]
    # (script echoes the NUL of the empty stdin as ^@ before the first line.)
    assert lines[0].endswith("/dev/pts/0") and "stdin-is-a-tty" in lines, out.stdout
