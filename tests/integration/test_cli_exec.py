"""`dockyard exec`, end to end: processes inside running containers."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import termios
import time

import pytest


@pytest.fixture
def running(dockyard, unique):
    name = unique("ex")
    proc = dockyard("run", "-d", "--name", name, "busybox", "sleep", "300")
    assert proc.returncode == 0, proc.stderr
    yield name
    dockyard("rm", "-f", name)


def test_exec_output_and_exit_code(dockyard, running):
    proc = dockyard("exec", running, "sh", "-c", "echo out; echo err >&2; exit 5")
    assert proc.returncode == 5
    assert proc.stdout == "out\n"
    assert proc.stderr == "err\n"


def test_exec_joins_the_containers_namespaces(dockyard, running, inspect):
    pid1 = inspect(running)["State"]["Pid"]
    proc = dockyard(
        "exec",
        running,
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline; echo; for n in mnt net uts ipc pid; do readlink /proc/self/ns/$n; done",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == inspect(running)["Config"]["Hostname"]
    assert lines[1] == "sleep\x00300\x00"
    for ns, got in zip(("mnt", "net", "uts", "ipc", "pid"), lines[2:], strict=True):
        assert got == os.readlink(f"/proc/{pid1}/ns/{ns}"), ns
    cg = dockyard("exec", running, "cat", "/proc/self/cgroup").stdout
    with open(f"/proc/{pid1}/cgroup") as f:
        want = f.read()
    assert cg == want


def test_exec_has_the_containers_caps_unless_privileged(dockyard, running):
    def capeff(*flags: str) -> int:
        out = dockyard("exec", *flags, running, "grep", "CapEff", "/proc/self/status").stdout
        return int(out.split()[1], 16)

    normal, privileged = capeff(), capeff("--privileged")
    assert normal & (1 << 21) == 0  # no CAP_SYS_ADMIN, as the container
    assert privileged & (1 << 21)
    seccomp = dockyard("exec", running, "grep", "Seccomp:", "/proc/self/status").stdout
    assert seccomp.split()[1] == "2"
    seccomp = dockyard("exec", "--privileged", running, "grep", "Seccomp:", "/proc/self/status")
    assert seccomp.stdout.split()[1] == "0"


def test_exec_user_workdir_env(dockyard, running, tmp_path):
    envfile = tmp_path / "env"
    envfile.write_text("FROMFILE=yes\n")
    proc = dockyard(
        "exec", "-u", "nobody", "-w", "/tmp", "-e", "A=1", "--env-file", str(envfile),
        running, "sh", "-c", "id -u; pwd; echo $A $FROMFILE $HOSTNAME",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    uid, cwd, env = proc.stdout.splitlines()
    assert uid == "65534"
    assert cwd == "/tmp"
    assert env.split()[:2] == ["1", "yes"]


def test_exec_env_without_a_value_unsets_it(dockyard, unique):
    """`-e NAME` with NAME unset where the CLI runs reaches the daemon as `NAME`:
    dockerd unsets the variable (the container's own too), never passes `NAME` on."""
    name = unique("exenv")
    proc = dockyard("run", "-d", "--name", name, "-e", "FOO=1", "busybox", "sleep", "300")
    assert proc.returncode == 0, proc.stderr
    try:
        proc = dockyard(
            "exec", "-e", "FOO", "-e", "DKY_NEVER_SET", "-e", "HOSTNAME=mine", name,
            "sh", "-c", "echo ${FOO-unset} ${DKY_NEVER_SET-unset} $HOSTNAME",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "unset unset mine\n"
    finally:
        dockyard("rm", "-f", name)


def test_exec_stdin(dockyard, running):
    proc = dockyard("exec", "-i", running, "sh", "-c", "tr a-z A-Z", input="hello\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "HELLO\n"


def test_exec_detached_runs_on(dockyard, running):
    proc = dockyard("exec", "-d", running, "sh", "-c", "sleep 0.2; echo done > /tmp/flag")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if dockyard("exec", running, "cat", "/tmp/flag").stdout == "done\n":
            return
        time.sleep(0.2)
    pytest.fail("the detached exec did not run")


def test_exec_into_stopped_container_is_docker_error(dockyard, unique):
    name = unique("stopped")
    assert dockyard("create", "--name", name, "busybox", "true").returncode == 0
    try:
        proc = dockyard("exec", name, "true")
        assert proc.returncode == 1
        assert "is not running" in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        dockyard("rm", "-f", name)


def test_exec_missing_binary_is_127(dockyard, running):
    proc = dockyard("exec", running, "/no/such/thing")
    assert proc.returncode == 127, (proc.stdout, proc.stderr)
    assert "/no/such/thing" in proc.stdout + proc.stderr


def _read_until(fd: int, want: bytes, timeout: float = 30) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while want not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{want!r} not seen in {got!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    return got


def _pty_exec(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    primary, secondary = pty.openpty()
    import fcntl
    import struct

    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        argv, stdin=secondary, stdout=secondary, stderr=secondary, env=env,
        start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )  # fmt: skip
    os.close(secondary)
    return proc, primary


@pytest.mark.parametrize("client", ["dockyard", "docker"])
def test_exec_it_is_a_real_terminal_with_resize(daemon, running, client):
    import fcntl
    import shutil
    import struct

    if client == "docker":
        if not shutil.which("docker"):
            pytest.skip("no docker CLI")
        argv = ["docker", "exec", "-it", running, "sh"]
    else:
        argv = [sys.executable, "-m", "dockyard", "exec", "-it", running, "sh"]
    proc, primary = _pty_exec(argv, daemon.env)
    try:
        # ash flushes the input it finds at start: type after its prompt, as a user does.
        _read_until(primary, b"# ")
        os.write(primary, b"tty; stty size\r")
        out = _read_until(primary, b"24 80")
        assert b"/dev/pts/" in out
        # SIGWINCH: the client's terminal grows, the process inside sees it.
        fcntl.ioctl(primary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        proc.send_signal(28)  # SIGWINCH (the kernel sends it to the foreground group only)
        deadline = time.monotonic() + 20
        while True:
            os.write(primary, b"stty size\r")
            try:
                _read_until(primary, b"40 120", 1)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        os.write(primary, b"exit 3\r")
        assert proc.wait(timeout=30) == 3
    finally:
        proc.kill()
        proc.wait()
        os.close(primary)


def test_exec_it_restores_the_terminal(daemon, running):
    argv = [sys.executable, "-m", "dockyard", "exec", "-it", running, "sh"]
    primary, secondary = pty.openpty()
    before = termios.tcgetattr(secondary)
    proc = subprocess.Popen(
        argv, stdin=secondary, stdout=secondary, stderr=secondary, env=daemon.env
    )
    try:
        _read_until(primary, b"# ")
        os.write(primary, b"echo ready\r")
        _read_until(primary, b"ready")
        os.write(primary, b"exit\r")
        assert proc.wait(timeout=30) == 0
        assert termios.tcgetattr(secondary) == before
    finally:
        proc.kill()
        proc.wait()
        os.close(primary)
        os.close(secondary)


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def test_exec_runs_beside_its_container_without_a_process_of_its_own(dockyard, running, inspect):
    """The exec's process is a child of the monitor host that runs the container's
    monitor: no interpreter is forked for it, and what the daemon holds per exec is a
    connection."""
    init = inspect(running)["State"]["Pid"]
    host = _ppid(init)
    ex = dockyard("exec", "-d", running, "sleep", "31")
    assert ex.returncode == 0, ex.stderr
    deadline = time.monotonic() + 30
    found: list[int] = []
    while not found and time.monotonic() < deadline:
        found = [p for p in _pids() if _cmdline(p) == b"sleep\x0031\x00"]
        time.sleep(0.05)
    assert found, "the exec's process did not show up"
    assert _ppid(found[0]) == host
    assert b"forkserver" in _cmdline(host)  # the monitor host, forked by the forkserver


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_exec_output_is_its_own_while_the_container_prints(dockyard, unique):
    """The exec's connection starts as one to the container's monitor: nothing the
    container prints meanwhile reaches the exec's output."""
    name = unique("noisy")
    proc = dockyard("run", "-d", "--name", name, "busybox", "sh", "-c",
                    "while true; do echo container-noise; done")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    try:
        for i in range(20):
            ex = dockyard("exec", name, "echo", f"only-me-{i}")
            assert (ex.returncode, ex.stdout, ex.stderr) == (0, f"only-me-{i}\n", "")
    finally:
        dockyard("rm", "-f", name)


@pytest.mark.parametrize("client", ["dockyard", "docker"])
def test_a_terminal_that_goes_away_leaves_the_shells_running(daemon, dockyard, unique, client):
    """Bad input of issue 9: the user's terminal is gone (a dropped ssh) under `run -it`
    and `exec -it`. As with dockerd, the client's EOF never reaches a tty's input: the
    shells in the container run on and what they printed is kept."""
    import shutil

    if client == "docker" and not shutil.which("docker"):
        pytest.skip("no docker CLI")
    cli = ["docker"] if client == "docker" else [sys.executable, "-m", "dockyard"]
    name = unique("gone")
    runs = [
        [*cli, "run", "-it", "--name", name, "busybox", "sh"],
        [*cli, "exec", "-it", name, "sh", "-c", "echo $$ > /tmp/exec.pid; exec sh"],
    ]
    procs = []
    try:
        for argv in runs:
            proc, primary = _pty_exec(argv, daemon.env)
            procs.append(proc)
            _read_until(primary, b"# ")
            os.write(primary, b"echo before-gone\r")
            _read_until(primary, b"before-gone\r\n")
            os.close(primary)  # the terminal goes away
            time.sleep(1)
        assert dockyard("inspect", "-f", "{{.State.Running}}", name).stdout == "true\n"
        assert "before-gone" in dockyard("logs", name).stdout
        pid = dockyard("exec", name, "cat", "/tmp/exec.pid").stdout.strip()
        proc = dockyard("exec", name, "sh", "-c", f"test -d /proc/{pid} && echo alive")
        assert proc.stdout == "alive\n", (pid, proc.stderr)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        dockyard("rm", "-f", name)
