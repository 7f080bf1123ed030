"""The daemon-monitor channel belongs to the daemon (issue 5).

Attacks from inside containers against the channel between the daemon and a
container's monitor, run as root against a real daemon (tests/conftest.py),
with a small static attacker program (monitor_attack.c) bind-mounted into
busybox containers; then unit tests of what the daemon does with malformed
frames from a monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.runtime import frames
from dockyard.runtime.launcher import ExecSpec, Launcher, MonitorLink

HERE = Path(__file__).resolve().parent


def wait_until(
    predicate: Callable[[], object], timeout: float = 30, interval: float = 0.1
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def extra_fds(ls_output: str) -> dict[int, str]:
    """fd -> target from `ls -l /proc/self/fd`, for every fd above 2 except ls's own
    open directory (its highest fd: /proc/<pid>/fd, or no target once it is closed)."""
    fds = {int(m[1]): m[2] for m in re.finditer(r" (\d+)(?: -> (.*))?$", ls_output, re.M)}
    assert {0, 1, 2} <= set(fds), ls_output  # the listing is real, not empty
    own = max(fds)
    assert own > 2 and (fds[own] is None or re.fullmatch(r"/proc/\d+/fd", fds[own])), ls_output
    return {fd: t for fd, t in fds.items() if 2 < fd < own}


def inspect(daemon, name: str) -> dict:
    proc = daemon.dockyard("inspect", name)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[0]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


@pytest.fixture(scope="module")
def attacker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the static attacker binary `attack`, to bind-mount at /atk."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("needs a C compiler to build the attacker (gcc -static)")
    out = tmp_path_factory.mktemp("atk")
    out.chmod(0o755)
    subprocess.run(
        [cc, "-static", "-O2", "-o", str(out / "attack"), str(HERE / "monitor_attack.c")],
        check=True,
        capture_output=True,
    )
    return out


# -- (1) no fd but 0-2 reaches a container ----------------------------------------


def test_run_gives_the_container_only_stdio(daemon):
    plain = daemon.dockyard("run", "--rm", "busybox", "ls", "-l", "/proc/self/fd")
    assert plain.returncode == 0, plain.stderr
    assert extra_fds(plain.stdout) == {}
    with_stdin = daemon.dockyard(
        "run", "--rm", "-i", "busybox", "ls", "-l", "/proc/self/fd", input=""
    )
    assert with_stdin.returncode == 0, with_stdin.stderr
    assert extra_fds(with_stdin.stdout) == {}
    tty = daemon.dockyard("run", "-d", "-t", "busybox", "ls", "-l", "/proc/self/fd")
    assert tty.returncode == 0, tty.stderr
    cid = tty.stdout.strip()
    try:
        assert wait_until(lambda: daemon.dockyard("wait", cid).stdout.strip() == "0")
        logs = daemon.dockyard("logs", cid).stdout.replace("\r\n", "\n")
        assert "/dev/pts/0" in logs and extra_fds(logs) == {}
    finally:
        daemon.dockyard("rm", "-f", cid)


def test_exec_gives_the_process_only_stdio(daemon, unique, tmp_path):
    name = unique("execfd")
    run = daemon.dockyard("run", "-d", "--name", name, "busybox", "sleep", "60")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    bundle = str(daemon.data_root / "containers" / cid)

    async def exec_ls(terminal: bool) -> str:
        launcher = Launcher(str(tmp_path / "run"))
        await launcher.start()
        try:
            link = await launcher.exec(
                cid, bundle, ExecSpec(["ls", "-l", "/proc/self/fd"], terminal=terminal)
            )
            out = bytearray()
            async for _stream, data in link.frames():
                out += data
            record = await link.wait()
            await link.close()
            assert record.exit_code == 0, out
            return out.decode().replace("\r\n", "\n")
        finally:
            await launcher.close()

    try:
        assert extra_fds(asyncio.run(exec_ls(False))) == {}
        assert extra_fds(asyncio.run(exec_ls(True))) == {}
    finally:
        daemon.dockyard("rm", "-f", name)


def test_restarts_give_the_container_only_stdio(daemon, unique):
    listing = "ls -l /proc/self/fd; echo ==="
    policy = unique("restartfd")
    run = daemon.dockyard(
        "run", "-d", "--name", policy, "--restart", "on-failure:1",
        "busybox", "sh", "-c", f"{listing}; exit 1",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    manual = unique("restartfd")
    run = daemon.dockyard(
        "run", "-d", "--name", manual, "busybox", "sh", "-c", f"{listing}; sleep 60"
    )
    assert run.returncode == 0, run.stderr
    try:
        assert wait_until(lambda: daemon.dockyard("logs", manual).stdout.count("===") == 1)
        restart = daemon.dockyard("restart", "-t", "1", manual)
        assert restart.returncode == 0, restart.stderr
        for name in (policy, manual):
            assert wait_until(lambda n=name: daemon.dockyard("logs", n).stdout.count("===") == 2)
            runs = daemon.dockyard("logs", name).stdout.split("===")[:2]
            assert [extra_fds(r) for r in runs] == [{}, {}], name
    finally:
        daemon.dockyard("rm", "-f", policy, manual)


# -- (2) forged frames from inside a container ---------------------------------------


def test_forged_frames_from_a_container_are_not_believed(daemon, unique, attacker):
    name = unique("forger")
    rss_before = rss_kib(daemon.proc.pid)
    run = daemon.dockyard(
        "run", "-d", "--name", name, "--network", "none", "-v", f"{attacker}:/atk:ro",
        "busybox", "sh", "-c", "/atk/attack fds; /atk/attack sockets any; sleep 60",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    try:
        # The attack's last words: "listed N" then "done".
        logs = wait_until(
            lambda: (
                re.search(r"^listed \d+\ndone$", out := daemon.dockyard("logs", name).stdout, re.M)
                and out
            ),
            timeout=60,
        )
        assert logs, daemon.dockyard("logs", name).stdout
        rss_after = rss_kib(daemon.proc.pid)
        state = inspect(daemon, name)["State"]
        pid = state["Pid"]
        # The daemon still knows it runs, with the pid that does run...
        assert state["Running"] is True, (state, logs)
        assert alive(pid)
        # ...did not buffer the 64 MiB behind the 4 GiB header...
        assert rss_after - rss_before < 32 * 1024, (rss_before, rss_after, logs)
        # ...and still manages it.
        stop = daemon.dockyard("stop", "-t", "1", name)
        assert stop.returncode == 0, stop.stderr
        state = inspect(daemon, name)["State"]
        assert state["Running"] is False and state["ExitCode"] == 137, state
        assert not alive(pid)
    finally:
        daemon.dockyard("rm", "-f", name)


# -- (3) a host-network container against another container's monitor ---------------


VICTIM_SCRIPT = (
    "(while :; do echo VICTIM-OUTPUT; sleep 0.2; done) & while read line; do echo got:$line; done"
)


def test_host_network_container_cannot_reach_other_monitors(daemon, unique, attacker):
    victim = unique("victim")
    run = daemon.dockyard("run", "-d", "-i", "--name", victim, "busybox", "sh", "-c", VICTIM_SCRIPT)
    assert run.returncode == 0, run.stderr
    try:
        pid = inspect(daemon, victim)["State"]["Pid"]
        assert wait_until(lambda: "VICTIM-OUTPUT" in daemon.dockyard("logs", victim).stdout)
        attack = daemon.dockyard(
            "run", "--rm", "--network", "host", "-v", f"{attacker}:/atk:ro",
            "busybox", "/atk/attack", "sockets", str(pid),
        )  # fmt: skip
        assert attack.returncode == 0 and attack.stdout.endswith("done\n"), attack
        assert re.search(r"^listed [1-9]", attack.stdout, re.M), attack.stdout  # it saw sockets
        reached = [
            line for line in attack.stdout.splitlines() if line.startswith(("MONITOR", "LEAKED"))
        ]
        assert reached == [], attack.stdout

        # The victim is untouched: running, same process, no injected stdin, output flowing.
        state = inspect(daemon, victim)["State"]
        assert state["Running"] is True and state["Pid"] == pid and alive(pid), state
        before = daemon.dockyard("logs", victim).stdout
        assert "got:INJECTED" not in before
        assert wait_until(
            lambda: (
                daemon.dockyard("logs", victim).stdout.count("VICTIM-OUTPUT")
                > before.count("VICTIM-OUTPUT")
            )
        )
        stop = daemon.dockyard("stop", "-t", "1", victim)
        assert stop.returncode == 0, stop.stderr
    finally:
        daemon.dockyard("rm", "-f", victim)


def test_monitor_sockets_are_not_abstract(daemon, unique):
    run = daemon.dockyard("run", "-d", "--name", unique("sock"), "busybox", "sleep", "60")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    try:
        with open("/proc/net/unix") as f:
            names = [
                line.split()[-1] for line in f.read().splitlines()[1:] if len(line.split()) > 7
            ]
        assert not [n for n in names if n.startswith("@") and cid in n]
        sock = daemon.data_root / "containers" / cid / "monitor.sock"
        assert sock.is_socket() and (sock.stat().st_mode & 0o077) == 0
    finally:
        daemon.dockyard("rm", "-f", cid)


# -- (4) what the daemon does with malformed frames ----------------------------------


async def link_fed(data: bytes, tmp_path: Path) -> tuple[MonitorLink, socket.socket]:
    """A MonitorLink whose monitor end writes `data` (then stays open)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.setblocking(False)
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    link = MonitorLink(reader, writer, str(tmp_path))
    await send(theirs, data)
    return link, theirs


async def send(sock: socket.socket, data: bytes) -> None:
    """Write what the link takes within a second (it may stop reading)."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        await asyncio.wait_for(asyncio.get_running_loop().sock_sendall(sock, data), 1)


HELLO = frames.encode_control({"event": "started", "pid": 42, "monitor_pid": 41, "started_at": "t"})


def run_link(data: bytes, tmp_path: Path, *, after: bytes = b"") -> tuple[MonitorLink, list, bool]:
    """Feed `data`, then `after`; return the link, its output frames, and whether it ended."""

    async def main() -> tuple[MonitorLink, list, bool]:
        link, theirs = await link_fed(data, tmp_path)
        await asyncio.sleep(0.2)
        if after:
            await send(theirs, after)
            await asyncio.sleep(0.2)
        ended = link._ended
        theirs.close()
        got = [f async for f in link.frames()]
        await link.close()
        return link, got, ended

    return asyncio.run(main())


def test_oversize_header_closes_the_link_without_allocating(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="dockyard")
    data = HELLO + frames.HEADER.pack(frames.CONTROL, 0xFFFFFFFF) + b"x" * (4 << 20)
    tracemalloc.start()
    try:
        link, got, ended = run_link(data, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ended  # the connection is dropped at the header
    assert peak < 1 << 20  # neither 4 GiB nor the 4 MiB behind the header is buffered
    assert link.pid == 42 and got == []
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "4294967295-byte frame" in lines[0] and "\n" not in lines[0]


@pytest.mark.parametrize(
    "bad",
    [
        frames.encode(frames.CONTROL, b"{not json"),
        frames.encode(frames.CONTROL, b"[1, 2]"),
        frames.encode(frames.CONTROL, b"\xff\xfe"),
        frames.encode_control({"event": "exit", "exit_code": "0", "finished_at": "t"}),
        frames.encode_control({"event": "exit", "exit_code": 1 << 40, "finished_at": "t"}),
        frames.encode_control({"event": "exit", "exit_code": True, "finished_at": "t"}),
        frames.encode_control({"event": "exit", "finished_at": "t"}),
        frames.encode_control({"event": "exit", "exit_code": 0, "finished_at": 5}),
        frames.encode_control(
            {"event": "exit", "exit_code": 0, "finished_at": "t", "oom_killed": "yes"}
        ),
        frames.encode_control({"event": "state", "pid": "1", "monitor_pid": 2, "started_at": "t"}),
        frames.encode_control({"event": "state", "pid": -5, "monitor_pid": 2, "started_at": "t"}),
        frames.encode_control({"event": "reply", "req": "x"}),
        frames.encode_control({"event": "nonsense"}),
        frames.encode(7, b"no such stream"),
    ],
    ids=lambda b: repr(b[8:60]),
)
def test_malformed_frames_are_logged_and_dropped(bad, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="dockyard")
    good_exit = frames.encode_control(
        {"event": "exit", "exit_code": 3, "finished_at": "2026-01-01T00:00:00Z"}
    )
    out = frames.encode(frames.STDOUT, b"still here\n")

    async def main() -> tuple[MonitorLink, list, object]:
        link, theirs = await link_fed(HELLO + bad + out, tmp_path)
        await asyncio.sleep(0.2)
        assert not link._exit.done()  # nothing malformed ends the container
        assert link.pid == 42
        await send(theirs, good_exit)
        record = await asyncio.wait_for(link.wait(), 5)
        theirs.close()
        got = [f async for f in link.frames()]
        await link.close()
        return link, got, record

    link, got, record = asyncio.run(main())
    assert got == [(1, b"still here\n")]  # the frames around the bad one went through
    assert record.exit_code == 3
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "\n" not in lines[0].getMessage(), [r.getMessage() for r in lines]


def test_truncated_frame_is_not_an_exit(tmp_path):
    # A monitor that dies mid-frame: no exit event was sent, so the record comes
    # from exit.json (absent here) and says the monitor vanished.
    async def ended_record() -> object:
        link, theirs = await link_fed(
            HELLO + frames.encode(frames.STDOUT, b"abcdef")[:10], tmp_path
        )
        theirs.close()
        record = await asyncio.wait_for(link.wait(), 5)
        await link.close()
        return record

    record = asyncio.run(ended_record())
    assert record.exit_code == 255 and "monitor" in record.error


def test_a_container_link_reconnects_after_a_broken_stream(tmp_path, caplog):
    # A stream out of step says nothing about the container: the link finds
    # its monitor again on the bundle's socket instead of reporting an exit.
    caplog.set_level(logging.WARNING, logger="dockyard")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / frames.MONITOR_SOCKET))
    listener.listen(1)
    listener.setblocking(False)

    async def main() -> object:
        link, theirs = await link_fed(HELLO + frames.HEADER.pack(frames.STDOUT, 1 << 30), tmp_path)
        loop = asyncio.get_running_loop()
        again, _ = await asyncio.wait_for(loop.sock_accept(listener), 5)
        again.setblocking(False)
        state = {"event": "state", "pid": 42, "monitor_pid": 41, "started_at": "t"}
        await send(again, frames.encode_control(state) + frames.encode(frames.STDOUT, b"on\n"))
        await asyncio.sleep(0.2)
        assert not link._exit.done()
        await send(
            again, frames.encode_control({"event": "exit", "exit_code": 7, "finished_at": "t"})
        )
        record = await asyncio.wait_for(link.wait(), 5)
        again.close()
        theirs.close()
        got = [f async for f in link.frames()]
        await link.close()
        assert got == [(1, b"on\n")]
        return record

    try:
        assert asyncio.run(main()).exit_code == 7
    finally:
        listener.close()
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def _monitor_events(bundle: str, command: dict | None, timeout: float = 10) -> list[dict]:
    """Connect to a container's monitor as the daemon does, send `command`, and read
    its control events until it closes or goes quiet."""
    fd = os.open(bundle, os.O_PATH | os.O_DIRECTORY)
    events: list[dict] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(frames.socket_path(fd))
            s.settimeout(timeout)
            if command is not None:
                s.sendall(frames.encode_control(command))
            decoder = frames.FrameDecoder()
            with contextlib.suppress(TimeoutError, ConnectionError):
                while (data := s.recv(65536)) and not any(
                    e.get("event") in ("error", "exit") for e in events
                ):
                    for stream, payload in decoder.feed(data):
                        if stream == frames.CONTROL:
                            events.append(json.loads(payload))
                    if command is None and events:
                        break
    finally:
        os.close(fd)
    return events


@pytest.mark.parametrize(
    "spec",
    [
        5,
        {},
        {"args": []},
        {"args": "sh"},
        {"args": [1, 2]},
        {"args": ["true"], "env": "PATH=/bin"},
        {"args": ["true"], "uid": "0"},
        {"args": ["true"], "uid": -1},
        {"args": ["true"], "additional_gids": [None]},
        {"args": ["true"], "privileged": "yes"},
        {"args": ["true"], "cwd": 7},
    ],
)
def test_a_malformed_exec_command_to_a_monitor_starts_nothing(daemon, unique, spec):
    """Whoever reaches a monitor's socket (root only) and sends an exec command with
    wrong types gets no process, and the container and its monitor go on."""
    name = unique("badexec")
    run = daemon.dockyard("run", "-d", "--name", name, "busybox", "sleep", "60")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    bundle = str(daemon.data_root / "containers" / cid)
    try:
        hello = _monitor_events(bundle, None)
        assert hello and hello[0]["event"] == "state" and hello[0]["exec"] is True
        events = _monitor_events(bundle, {"cmd": "exec", "exec": spec})
        assert not any(e.get("event") == "started" for e in events), events
        assert [e["event"] for e in events[1:]] in ([], ["error"]), events
        assert inspect(daemon, name)["State"]["Running"] is True
        ok = daemon.dockyard("exec", name, "echo", "still")
        assert (ok.returncode, ok.stdout) == (0, "still\n"), ok.stderr
    finally:
        daemon.dockyard("rm", "-f", name)


def test_exec_command_to_a_container_that_ended_is_refused(daemon, unique, tmp_path):
    """An exec asked of a monitor whose container has exited (it still serves its
    last clients) is an error, not a process in a dead container's namespaces."""
    name = unique("endexec")
    run = daemon.dockyard("run", "-d", "--name", name, "busybox", "sleep", "60")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    bundle = str(daemon.data_root / "containers" / cid)

    async def race() -> str:
        launcher = Launcher(str(tmp_path / "run"))
        await launcher.start()
        try:
            link = await launcher.exec(cid, bundle, ExecSpec(["sleep", "30"], env=["PATH=/bin"]))
            assert daemon.dockyard("kill", name).returncode == 0
            record = await asyncio.wait_for(link.wait(), 30)
            await link.close()
            with pytest.raises(Exception) as info:  # noqa: PT011 - RuntimeFailure or NotFound
                await launcher.exec(cid, bundle, ExecSpec(["true"], env=["PATH=/bin"]))
            return f"{record.exit_code} {type(info.value).__name__}"
        finally:
            await launcher.close()

    try:
        assert asyncio.run(race()) == "137 RuntimeFailure"
    finally:
        daemon.dockyard("rm", "-f", name)
