"""The real docker CLI (API 1.50) against our socket behaves as against dockerd."""

from __future__ import annotations

import json
import re
import time

import pytest

pytestmark = pytest.mark.docker_cli

HEX64 = re.compile(r"^[0-9a-f]{64}$")
PS_COLUMNS = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
IMAGES_COLUMNS = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]


def columns(header: str) -> list[str]:
    return re.split(r"\s{2,}", header.strip())


def row_named(table: str, name: str) -> str:
    rows = [line for line in table.splitlines()[1:] if line.split() and line.split()[-1] == name]
    assert len(rows) == 1, f"expected one row named {name!r} in:\n{table}"
    return rows[0]


@pytest.fixture(scope="module")
def exited(daemon):
    """A container that wrote to both streams and exited with 3."""
    name = "cli-exit3"
    proc = daemon.docker(
        "run", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    return name, proc


def test_run_rm_prints_hello_world(daemon, unique):
    name = unique("hello")
    proc = daemon.docker("run", "--rm", "--name", name, "busybox", "echo", "hello", "world")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello world\n"
    gone = daemon.docker("inspect", name)
    assert gone.returncode != 0, "--rm left the container behind"
    assert "No such" in gone.stderr


def test_run_passes_exit_code_and_separates_streams(exited):
    _name, proc = exited
    assert proc.returncode == 3
    assert proc.stdout == "out\n"
    assert proc.stderr == "err\n"


def test_ps_a_shows_docker_columns_and_exit_status(daemon, exited):
    name, _ = exited
    proc = daemon.docker("ps", "-a")
    assert proc.returncode == 0, proc.stderr
    assert columns(proc.stdout.splitlines()[0]) == PS_COLUMNS
    row = row_named(proc.stdout, name)
    assert "busybox" in row
    assert '"sh -c ' in row  # docker quotes and truncates the command
    assert re.search(r"Exited \(3\) .*ago", row), row


def test_ps_without_a_hides_exited(daemon, exited):
    name, _ = exited
    proc = daemon.docker("ps")
    assert proc.returncode == 0, proc.stderr
    assert name not in proc.stdout


def test_logs_keeps_stdout_and_stderr_apart(daemon, exited):
    name, _ = exited
    proc = daemon.docker("logs", name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "out\n"
    assert proc.stderr == "err\n"


def test_inspect_json_fields(daemon, exited):
    name, _ = exited
    proc = daemon.docker("inspect", name)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, list) and len(data) == 1
    c = data[0]
    assert HEX64.match(c["Id"]), c["Id"]
    assert c["Name"] == f"/{name}"
    assert c["State"]["ExitCode"] == 3
    assert c["State"]["Status"] == "exited"
    assert c["State"]["Running"] is False
    assert c["Config"]["Cmd"] == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    assert c["Config"]["Image"] == "busybox"
    assert c["Image"].startswith("sha256:")


def test_inspect_format(daemon, exited):
    name, _ = exited
    proc = daemon.docker("inspect", "-f", "{{.State.ExitCode}}", name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "3\n"
    proc = daemon.docker("inspect", "--format", "{{json .Config.Cmd}}", name)
    assert json.loads(proc.stdout) == ["sh", "-c", "echo out; echo err >&2; exit 3"]


def test_rm_removes(daemon, unique):
    name = unique("rm")
    assert daemon.docker("run", "--name", name, "busybox", "true").returncode == 0
    proc = daemon.docker("rm", name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == name
    assert name not in daemon.docker("ps", "-a").stdout
    assert daemon.docker("inspect", name).returncode != 0


def test_images_lists_busybox(daemon):
    proc = daemon.docker("images")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert columns(lines[0]) == IMAGES_COLUMNS
    rows = [line.split() for line in lines[1:]]
    busybox = [r for r in rows if r[:2] == ["busybox", "latest"]]
    assert busybox, proc.stdout
    assert re.match(r"^[0-9a-f]{12}$", busybox[0][2])


def test_detached_stop_rm(daemon, unique):
    name = unique("sleeper")
    run = daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "30")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    assert HEX64.match(cid), run.stdout
    ps = daemon.docker("ps")
    assert re.search(r"Up .*" + re.escape(name), ps.stdout), ps.stdout

    t0 = time.monotonic()
    stop = daemon.docker("stop", "-t", "1", name)
    took = time.monotonic() - t0
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip() == name
    # sleep as PID 1 ignores SIGTERM: docker waits 1s and then kills it.
    assert took < 10, f"stop -t 1 took {took:.1f}s"
    state = json.loads(daemon.docker("inspect", name).stdout)[0]["State"]
    assert state["Running"] is False
    assert state["ExitCode"] == 137

    rm = daemon.docker("rm", cid)
    assert rm.returncode == 0, rm.stderr
    assert daemon.docker("inspect", cid).returncode != 0


def test_rm_running_needs_force(daemon, unique):
    name = unique("busy")
    assert daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "30").returncode == 0
    rm = daemon.docker("rm", name)
    assert rm.returncode != 0
    assert "running" in rm.stderr.lower(), rm.stderr
    forced = daemon.docker("rm", "-f", name)
    assert forced.returncode == 0, forced.stderr
    assert daemon.docker("inspect", name).returncode != 0


def test_version_has_server_section(daemon):
    proc = daemon.docker("version")
    assert proc.returncode == 0, proc.stderr
    assert "Client:" in proc.stdout
    server = proc.stdout.split("Server:", 1)
    assert len(server) == 2, proc.stdout
    assert re.search(r"API version:\s+1\.\d+", server[1]), proc.stdout
    assert re.search(r"OS/Arch:\s+linux/", server[1]), proc.stdout


def test_unknown_image_fails_clearly(daemon):
    proc = daemon.docker("run", "--rm", "no-such-image-dky", "true")
    assert proc.returncode == 125
    assert "no-such-image-dky" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_name_conflict(daemon, unique):
    name = unique("dup")
    first = daemon.docker("create", "--name", name, "busybox", "true")
    assert first.returncode == 0, first.stderr
    # docker exits 1 for a failed `create`, 125 for a `run` that never started.
    second = daemon.docker("create", "--name", name, "busybox", "true")
    assert second.returncode == 1
    assert "is already in use" in second.stderr
    assert first.stdout.strip() in second.stderr  # names the holder, as dockerd does
    third = daemon.docker("run", "--name", name, "busybox", "true")
    assert third.returncode == 125
    assert "is already in use" in third.stderr


def test_file_bind_mount(daemon, unique):
    src = daemon.base / unique("hostfile")
    src.write_text("bound\n")
    proc = daemon.docker("run", "--rm", "-v", f"{src}:/h:ro", "busybox", "cat", "/h")
    assert (proc.returncode, proc.stdout) == (0, "bound\n"), proc.stderr


def test_docker_cli_isolation_flags(daemon, tmp_path):
    # The docker CLI reads the profile file and sends its content, as dockyard's does.
    profile = tmp_path / "profile.json"
    profile.write_text(
        '{"defaultAction": "SCMP_ACT_ALLOW",'
        ' "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}'
    )
    proc = daemon.docker(
        "run", "--rm", "--cap-drop", "ALL", "--security-opt", f"seccomp={profile}",
        "--ulimit", "nofile=64:128", "--read-only", "--tmpfs", "/scratch",
        "--device", "/dev/null:/dev/mynull", "busybox", "sh", "-c",
        "grep CapEff /proc/self/status; ulimit -n; mkdir /scratch/d || echo refused;"
        " touch /x || echo read-only; echo > /dev/mynull && echo device",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0].split() == ["CapEff:", "0000000000000000"]
    assert lines[1:5] == ["64", "refused", "read-only", "device"]


def test_docker_cli_update(daemon, unique):
    name = unique("upd")
    started = daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "60")
    assert started.returncode == 0, started.stderr
    try:
        proc = daemon.docker("update", "--memory", "96m", "--memory-swap", "200m", name)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == name
    finally:
        daemon.docker("rm", "-f", name)
