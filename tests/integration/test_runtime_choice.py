"""`--runtime runc|crun|dockyard`: another OCI runtime runs the same bundle under
our daemon and monitor (output, exit codes, stop), /info lists the runtimes
truly, and an unknown one is refused. (The daemon's teardown checks that no
mount, cgroup or process is left.)"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import REPO

INSTALLED = [name for name in ("runc", "crun") if shutil.which(name)]
UNIFIED = Path("/sys/fs/cgroup/unified/cgroup.controllers")


def crun_refuses_this_host() -> bool:
    """crun refuses a hybrid host whose cgroup2 still holds a controller (here: hugetlb,
    until `mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb` moves it to v1)."""
    return UNIFIED.exists() and bool(UNIFIED.read_text().split())


def test_info_lists_the_runtimes(daemon) -> None:
    info = daemon.request("GET", "/info").json()
    assert info["DefaultRuntime"] == "dockyard"
    assert info["Runtimes"]["dockyard"] == {"path": "dockyard-runtime"}
    for name in INSTALLED:
        assert info["Runtimes"][name] == {"path": shutil.which(name)}


def test_unknown_runtime_is_refused_and_the_default_is_recorded(daemon, unique) -> None:
    bad = daemon.dockyard("run", "--rm", "--runtime", "nope", "busybox", "true")
    assert bad.returncode != 0
    assert "unknown or invalid runtime name: nope" in bad.stderr
    name = unique("rt")
    assert daemon.dockyard("create", "--name", name, "busybox", "true").returncode == 0
    try:
        shown = daemon.dockyard("inspect", "-f", "{{.HostConfig.Runtime}}", name)
        assert shown.stdout.strip() == "dockyard"
    finally:
        daemon.dockyard("rm", "-f", name)


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_another_runtime_runs_the_container(daemon, unique, runtime) -> None:
    if runtime not in INSTALLED:
        pytest.skip(f"{runtime} is not installed")
    if runtime == "crun" and crun_refuses_this_host():
        pytest.skip(
            "crun refuses hybrid cgroups with controllers on v2 (see crun_refuses_this_host)"
        )
    out = daemon.dockyard(
        "run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", "echo hi from $$; exit 3"
    )
    assert out.stdout == "hi from 1\n", out.stderr
    assert out.returncode == 3
    missing = daemon.dockyard("run", "--rm", "--runtime", runtime, "busybox", "no-such-cmd")
    assert missing.returncode == 127, missing.stderr
    name = unique("rt")
    started = daemon.dockyard(
        "run", "-d", "--runtime", runtime, "--name", name, "busybox", "sleep", "300"
    )
    assert started.returncode == 0, started.stderr
    try:
        shown = daemon.dockyard("inspect", "-f", "{{.HostConfig.Runtime}} {{.State.Running}}", name)
        assert shown.stdout.split() == [runtime, "true"]
        # its monitor runs no execs: an exec monitor of its own does (the fallback)
        ex = daemon.dockyard("exec", name, "sh", "-c", "echo in; exit 5")
        assert (ex.returncode, ex.stdout) == (5, "in\n"), ex.stderr
        stopped = daemon.dockyard("stop", "-t", "1", name)
        assert stopped.returncode == 0, stopped.stderr
        code = daemon.dockyard("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "137"
    finally:
        daemon.dockyard("rm", "-f", name)
    # The runtime's own state is gone too (its `delete` ran), and its cgroup.
    state = daemon.data_root / "run" / "runtimes" / runtime
    assert not state.exists() or sorted(p.name for p in state.iterdir()) == []


def test_runc_with_a_tty_hands_the_pty_to_the_monitor(daemon) -> None:
    """-t: runc sends the pty master over the monitor's console socket."""
    if "runc" not in INSTALLED:
        pytest.skip("runc is not installed")
    cli = " ".join(
        shlex.quote(a)
        for a in [sys.executable, "-m", "dockyard", "run", "-t", "--rm", "--runtime", "runc",
                  "busybox", "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-a-tty"]
    )  # fmt: skip
    # script(1) gives the CLI the terminal -t asks for.
    out = subprocess.run(
        ["script", "-qec", cli, "/dev/null"],
        capture_output=True, text=True, timeout=60, env=daemon.env,
        stdin=subprocess.DEVNULL, cwd=str(REPO / "src"),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line.strip() for line in out.stdout.splitlines()]
    assert any(line.endswith("/dev/pts/0") for line in lines), out.stdout
    assert "stdin-is-a-tty" in lines, out.stdout
