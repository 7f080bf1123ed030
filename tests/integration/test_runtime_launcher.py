"""The runtime on the real kernel: busybox containers through Launcher.

Needs root. Each test builds bundles over a tiny busybox layer, runs them
through a real forkserver and monitors, and checks what a user would see.
The `box` fixture then checks that nothing is left behind: no monitor
process, no container process, no cgroup directory, no monitor socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dockyard.errors import RuntimeFailure
from dockyard.runtime.launcher import (
    ExecSpec,
    ExitRecord,
    Launcher,
    MonitorLink,
    read_exit,
    read_state,
)
from dockyard.runtime.spec import BindMount, RunSpec, write_bundle

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and a real kernel"),
]

CGROUP_PARENT = f"dockyard-test-{os.getpid()}"
CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "devices", "freezer")
ID_PREFIX = f"t{os.getpid()}-"
BUSYBOX_APPLETS = [
    "sh", "echo", "true", "false", "id", "cat", "ls", "hostname", "ip", "sleep", "grep",
    "touch", "head", "dd", "stty", "test", "tr", "kill", "wc", "tty",
]  # fmt: skip


def cgroup_dir(controller: str, *parts: str) -> Path:
    return Path("/sys/fs/cgroup", controller, CGROUP_PARENT, *parts)


def monitor_sockets(bundles: list[Path]) -> list[str]:
    """The monitor sockets still there: listed by the kernel or left on disk."""
    with open("/proc/net/unix") as f:
        listed = [line.split()[-1] for line in f if f"@dockyard-monitor-{ID_PREFIX}" in line]
    left = [str(b / "monitor.sock") for b in bundles if (b / "monitor.sock").exists()]
    return listed + left


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer busybox image: /bin/busybox and its applets as symlinks."""
    root = tmp_path_factory.mktemp("layer")
    (root / "bin").mkdir()
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "dev", "sys", "etc", "tmp"):
        (root / d).mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return root


@pytest.fixture(scope="module", autouse=True)
def cgroup_parent() -> object:
    yield CGROUP_PARENT
    for controller in CONTROLLERS:
        path = Path("/sys/fs/cgroup", controller, CGROUP_PARENT)
        if path.exists():
            path.rmdir()


class Box:
    """Bundles over the busybox layer, one forkserver, and the leftovers check."""

    def __init__(self, tmp: Path, layer: Path) -> None:
        self.tmp = tmp
        self.layer = layer
        self.count = 0
        self.bundles: list[Path] = []
        self.monitor_pids: set[int] = set()

    def bundle(self, args: list[str], **overrides: object) -> tuple[str, str]:
        self.count += 1
        cid = f"{ID_PREFIX}{self.tmp.name[-20:]}-{self.count}"
        base = self.tmp / f"c{self.count}"
        for d in ("upper", "work"):
            (base / d).mkdir(parents=True)
        spec = dict(
            args=args,
            env=["PATH=/bin", "HOME=/"],
            hostname="boxhost",
            rootfs_lower=[str(self.layer)],
            rootfs_upper=str(base / "upper"),
            rootfs_work=str(base / "work"),
            cgroup_parent=CGROUP_PARENT,
        )
        spec.update(overrides)
        bundle = base / "bundle"
        write_bundle(str(bundle), RunSpec(**spec).to_oci(cid))
        self.bundles.append(bundle)
        return cid, str(bundle)

    def run(self, scenario: Callable[[Launcher], Awaitable[None]]) -> None:
        async def main() -> None:
            launcher = Launcher(str(self.tmp / "run"))
            await launcher.start()
            forkserver = launcher.forkserver_pid
            try:
                await asyncio.wait_for(scenario(launcher), timeout=30)
            finally:
                await launcher.close()
            assert forkserver is not None and not alive(
                forkserver
            )  # no forkserver outlives close()

        asyncio.run(main())

    def track(self, link: MonitorLink) -> MonitorLink:
        self.monitor_pids.add(link.monitor_pid)
        return link

    def cleanup_and_check(self) -> list[str]:
        # Kill whatever a failed test left running, then wait for the monitors to clean up.
        for bundle in self.bundles:
            state = read_state(str(bundle))
            if state and read_exit(str(bundle)) is None and alive(int(state["pid"])):
                os.kill(int(state["pid"]), signal.SIGKILL)
                self.monitor_pids.add(int(state["monitor_pid"]))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            any(alive(p) for p in self.monitor_pids) or monitor_sockets(self.bundles)
        ):
            time.sleep(0.02)
        problems = [f"monitor {p} still running" for p in self.monitor_pids if alive(p)]
        problems += [f"socket {s} left" for s in monitor_sockets(self.bundles)]
        for controller in CONTROLLERS:
            parent = cgroup_dir(controller)
            if parent.exists():
                problems += [f"cgroup {p} left" for p in parent.iterdir() if p.is_dir()]
        with open("/proc/self/mountinfo") as f:
            problems += [f"mount {line}" for line in f if str(self.tmp) in line]
        return problems


@pytest.fixture
def box(tmp_path: Path, layer: Path) -> object:
    b = Box(tmp_path, layer)
    yield b
    assert b.cleanup_and_check() == []


async def collect(link: MonitorLink) -> tuple[bytes, bytes, ExitRecord]:
    out, err = bytearray(), bytearray()
    async for stream, data in link.frames():
        (out if stream == 1 else err).extend(data)
    record = await link.wait()
    return bytes(out), bytes(err), record


async def run_to_end(
    box: Box, launcher: Launcher, args: list[str], **kw: object
) -> tuple[str, str, ExitRecord]:
    cid, bundle = box.bundle(args, **kw)
    link = box.track(await launcher.run(cid, bundle, log_path=f"{bundle}/log.json"))
    out, err, record = await collect(link)
    await link.close()
    return out.decode(), err.decode(), record


def test_echo_output_reaches_frames_and_json_log(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(["sh", "-c", "echo hello world; echo oops >&2; printf partial"])
        link = box.track(await launcher.run(cid, bundle, log_path=f"{bundle}/c-json.log"))
        assert link.pid > 0 and link.monitor_pid > 0 and link.started_at.endswith("Z")
        out, err, record = await collect(link)
        await link.close()
        assert out == b"hello world\npartial"
        assert err == b"oops\n"
        assert record.exit_code == 0 and not record.oom_killed
        entries = [json.loads(line) for line in Path(bundle, "c-json.log").read_text().splitlines()]
        by_stream = {(e["stream"], e["log"]) for e in entries}
        assert by_stream == {
            ("stdout", "hello world\n"),
            ("stderr", "oops\n"),
            ("stdout", "partial"),
        }
        assert all(e["time"].endswith("Z") for e in entries)
        assert read_exit(bundle) == record
        state = read_state(bundle)
        assert (
            state is not None
            and state["pid"] == link.pid
            and state["started_at"] == link.started_at
        )
        trace = json.loads(Path(bundle, "start-trace.json").read_text())
        assert "pivot_root" in [c[0] for c in trace["calls"]["init"]]
        assert trace["phases"]["request_to_started_ns"] > 0

    box.run(scenario)


def test_exit_codes(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        _, _, record = await run_to_end(box, launcher, ["sh", "-c", "exit 3"])
        assert record.exit_code == 3
        # A process killed by SIGKILL shows as 128+9. (PID 1 itself cannot be
        # killed from inside its namespace, as in Docker, so kill a child.)
        out, _, record = await run_to_end(
            box, launcher, ["sh", "-c", 'sh -c "kill -9 \\$\\$"; echo $?']
        )
        assert out == "137\n"
        _, _, record = await run_to_end(box, launcher, ["false"])
        assert record.exit_code == 1

    box.run(scenario)


def test_pid_hostname_and_overlay_root(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        out, _, record = await run_to_end(
            box, launcher, ["sh", "-c", "echo $$; hostname; grep ' / / ' /proc/self/mountinfo"]
        )
        pid, hostname, root = out.splitlines()
        assert (pid, hostname) == ("1", "boxhost")
        assert " - overlay overlay " in root and f"lowerdir={box.layer}" in root

    box.run(scenario)


def test_writes_go_to_the_upper_dir(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        _, _, record = await run_to_end(
            box, launcher, ["sh", "-c", "echo data > /new; echo x > /bin/marker"]
        )
        assert record.exit_code == 0
        upper = box.tmp / "c1" / "upper"
        assert (upper / "new").read_text() == "data\n"
        assert (upper / "bin" / "marker").exists()
        assert not (box.layer / "new").exists() and not (box.layer / "bin" / "marker").exists()

    box.run(scenario)


def test_private_network_has_only_loopback_up(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        out, _, _ = await run_to_end(box, launcher, ["sh", "-c", "ls /sys/class/net; ip -o link"])
        lines = out.splitlines()
        assert lines[0] == "lo" and len(lines) == 2
        assert "<LOOPBACK,UP,LOWER_UP>" in lines[1]
        before = set(os.listdir("/sys/class/net"))
        out, _, _ = await run_to_end(box, launcher, ["ls", "/sys/class/net"], network="host")
        after = set(os.listdir("/sys/class/net"))
        # Other daemons' veths come and go meanwhile: what was there before and after
        # is what the container must see.
        assert before & after <= set(out.split()) <= before | after

    box.run(scenario)


def test_missing_command_fails_before_start(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(["nosuchcmd", "arg"])
        with pytest.raises(RuntimeFailure) as info:
            await launcher.run(cid, bundle, log_path=f"{bundle}/log.json")
        assert info.value.kind == "not-found"
        assert info.value.message == 'exec: "nosuchcmd": executable file not found in $PATH'
        cid, bundle = box.bundle(["/etc/passwd"])
        with pytest.raises(RuntimeFailure) as info:
            await launcher.run(cid, bundle, log_path="")
        assert info.value.kind == "permission"
        assert read_exit(bundle) is None  # it never ran

    box.run(scenario)


def test_user_and_groups(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        out, _, _ = await run_to_end(
            box,
            launcher,
            ["sh", "-c", "id; grep CapEff /proc/self/status"],
            uid=1000,
            gid=1001,
            additional_gids=[10, 20],
        )
        ident, capeff = out.splitlines()
        assert ident == "uid=1000 gid=1001 groups=10,20"
        assert capeff.split() == ["CapEff:", "0000000000000000"]

    box.run(scenario)


def test_capabilities_reduced(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        out, _, _ = await run_to_end(
            box, launcher, ["grep", "-E", "^(Cap|Seccomp:)", "/proc/self/status"]
        )
        caps = dict(line.split(":\t") for line in out.splitlines())
        assert caps["Seccomp"] == "2"  # filtered, as in Docker
        assert caps["CapBnd"] == caps["CapEff"] == "00000000a80425fb"  # Docker's default set
        assert caps["CapInh"] == caps["CapAmb"] == "0000000000000000"
        out, _, _ = await run_to_end(
            box, launcher, ["grep", "^CapBnd", "/proc/self/status"], capabilities=["CAP_NET_RAW"]
        )
        assert out.split()[1] == f"{1 << 13:016x}"
        out, _, _ = await run_to_end(
            box,
            launcher,
            ["grep", "-E", "^(CapBnd|Seccomp:)", "/proc/self/status"],
            privileged=True,
        )
        assert out.splitlines()[1].split() == ["Seccomp:", "0"]
        assert int(out.split()[1], 16) == int(
            Path("/proc/self/status").read_text().split("CapBnd:\t")[1][:16], 16
        )

    box.run(scenario)


def test_kill_through_the_link(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(["sleep", "60"])
        link = box.track(await launcher.run(cid, bundle, log_path=""))
        await link.kill(signal.SIGKILL)
        record = await link.wait()
        assert record.exit_code == 137
        await link.close()
        cid, bundle = box.bundle(
            ["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.05; done"]
        )
        link = box.track(await launcher.run(cid, bundle, log_path=""))
        await asyncio.sleep(0.1)  # let the shell install its trap
        await link.kill(signal.SIGTERM)
        assert (await link.wait()).exit_code == 42
        await link.close()

    box.run(scenario)


def test_reattach_after_dropping_the_link(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(["sh", "-c", "sleep 0.5; echo done; exit 7"])
        link = box.track(await launcher.run(cid, bundle, log_path=f"{bundle}/log.json"))
        pid = link.pid
        await link.close()  # the daemon goes away
        again = await launcher.reattach(cid, bundle)
        assert again is not None and again.pid == pid and again.started_at == link.started_at
        out, _, record = await collect(again)
        assert out == b"done\n" and record.exit_code == 7
        # Many tasks may wait on one link.
        assert [r.exit_code for r in await asyncio.gather(again.wait(), again.wait())] == [7, 7]
        await again.close()
        await asyncio.sleep(0.2)
        assert await launcher.reattach(cid, bundle) is None
        exited = read_exit(bundle)
        assert exited is not None and exited.exit_code == 7
        assert json.loads(Path(bundle, "log.json").read_text())["log"] == "done\n"

    box.run(scenario)


def test_one_monitor_per_bundle_and_a_killed_ones_socket_is_reused(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(["sleep", "30"])
        link = box.track(await launcher.run(cid, bundle, log_path=f"{bundle}/log.json"))
        sock = Path(bundle, "monitor.sock")
        assert sock.is_socket() and sock.stat().st_mode & 0o777 == 0o600
        with pytest.raises(RuntimeFailure, match="already running"):
            await launcher.run(cid, bundle, log_path=f"{bundle}/log.json")
        os.kill(link.monitor_pid, signal.SIGKILL)  # the container dies with it (pdeathsig)
        await link.wait()
        await link.close()
        assert sock.is_socket()  # a killed monitor cannot remove its socket...
        assert await launcher.reattach(cid, bundle) is None  # ...which answers no one
        link = box.track(await launcher.run(cid, bundle, log_path=f"{bundle}/log.json"))
        await link.kill(signal.SIGKILL)
        assert (await link.wait()).exit_code == 137
        await link.close()
        await asyncio.sleep(0.2)
        assert not sock.exists()  # a monitor that ends removes it

    box.run(scenario)


def test_two_clients_at_once_and_stdin(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(
            ["sh", "-c", "read line; echo got $line; cat; echo end"], open_stdin=True
        )
        first = box.track(await launcher.run(cid, bundle, log_path=""))
        second = await launcher.reattach(cid, bundle)
        assert second is not None
        await second.write_stdin(b"hello\n")
        await first.write_stdin(b"more\n")
        await first.close_stdin()
        (out1, _, r1), (out2, _, r2) = await asyncio.gather(collect(first), collect(second))
        assert out1 == out2 == b"got hello\nmore\nend\n"
        assert r1.exit_code == r2.exit_code == 0
        await first.close()
        await second.close()

    box.run(scenario)


def test_terminal_and_resize(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(
            ["sh", "-c", "read x; tty; stty size; ls /dev/console"],
            terminal=True,
            open_stdin=True,
        )
        link = box.track(await launcher.run(cid, bundle, log_path=f"{bundle}/log.json"))
        await link.resize(30, 100)
        await link.write_stdin(b"go\n")
        out, err, record = await collect(link)
        await link.close()
        assert err == b""  # a tty has one stream
        # The pty is the container's own: it has a name inside, and is /dev/console.
        assert out == b"go\r\n/dev/pts/0\r\n30 100\r\n/dev/console\r\n"
        assert record.exit_code == 0

    box.run(scenario)


def test_cgroup_limits_applied_and_oom(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(["sleep", "60"], memory=64 << 20, cpu_shares=512, pids_limit=50)
        link = box.track(await launcher.run(cid, bundle, log_path=""))
        assert cgroup_dir("memory", cid, "memory.limit_in_bytes").read_text().strip() == str(
            64 << 20
        )
        assert cgroup_dir("cpu", cid, "cpu.shares").read_text().strip() == "512"
        assert cgroup_dir("pids", cid, "pids.max").read_text().strip() == "50"
        # Inside, /sys/fs/cgroup shows the container's own cgroups, read-only.
        out, _, _ = await run_to_end(
            box,
            launcher,
            [
                "sh",
                "-c",
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo 1 > /sys/fs/cgroup/pids/pids.max",
            ],
            memory=32 << 20,
        )
        assert out == f"{32 << 20}\n"
        for controller in CONTROLLERS:
            assert str(link.pid) in cgroup_dir(controller, cid, "cgroup.procs").read_text().split()
        await link.kill(signal.SIGKILL)
        await link.wait()
        await link.close()
        assert not cgroup_dir("memory", cid).exists()

        _, _, record = await run_to_end(
            box,
            launcher,
            ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
            memory=16 << 20,
        )
        assert record.oom_killed and record.exit_code == 137

    box.run(scenario)


def test_readonly_rootfs_and_bind_mounts(box: Box) -> None:
    hosts = box.tmp / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    data = box.tmp / "data"
    data.mkdir()

    async def scenario(launcher: Launcher) -> None:
        out, err, record = await run_to_end(
            box,
            launcher,
            [
                "sh",
                "-c",
                "cat /etc/hosts; echo w > /data/f; touch /x || echo ro; touch /etc/hosts || echo ro2",
            ],
            readonly_rootfs=True,
            mounts=[
                BindMount(str(hosts), "/etc/hosts", readonly=True),
                BindMount(str(data), "/data"),
            ],
        )
        assert out == "127.0.0.1 localhost\nro\nro2\n"
        assert (data / "f").read_text() == "w\n"

    box.run(scenario)


def test_forkserver_death_leaves_containers_running(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(["sh", "-c", "read x; echo still here"], open_stdin=True)
        link = box.track(await launcher.run(cid, bundle, log_path=""))
        pid = launcher.forkserver_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.1)
        assert alive(link.pid) and alive(link.monitor_pid)
        await link.write_stdin(b"x\n")
        out, _, record = await collect(link)
        assert out == b"still here\n" and record.exit_code == 0
        await link.close()
        # The next start brings up a new forkserver.
        _, _, record = await run_to_end(box, launcher, ["true"])
        assert record.exit_code == 0
        assert launcher.forkserver_pid not in (None, pid)

    box.run(scenario)


def test_stopping_the_monitor_stops_the_container_cleanly(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(["sleep", "60"])
        link = box.track(await launcher.run(cid, bundle, log_path=""))
        os.kill(link.monitor_pid, signal.SIGTERM)
        record = await link.wait()
        await link.close()
        assert record.exit_code == 137
        assert read_exit(bundle) == record

    box.run(scenario)


def test_large_output_is_complete_in_frames_and_log(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        # 200k numbered lines (~1.3 MB) as fast as the container can write them.
        cid, bundle = box.bundle(
            ["sh", "-c", "i=0; while [ $i -lt 200000 ]; do echo $i; i=$((i+1)); done"]
        )
        link = box.track(await launcher.run(cid, bundle, log_path=f"{bundle}/log.json"))
        out, _, record = await collect(link)
        await link.close()
        expected = "".join(f"{i}\n" for i in range(200000)).encode()
        assert out == expected and record.exit_code == 0
        with open(f"{bundle}/log.json") as f:
            logged = [json.loads(line)["log"] for line in f]
        assert len(logged) == 200000 and "".join(logged).encode() == expected

    box.run(scenario)


def test_a_container_runs_again_from_the_same_bundle(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(
            ["sh", "-c", "cat /count 2>/dev/null; echo x >> /count; read x"], open_stdin=True
        )
        outputs = []
        for _ in range(2):
            link = box.track(await launcher.run(cid, bundle, log_path=f"{bundle}/log.json"))
            assert read_exit(bundle) is None  # the previous run's record is gone while it runs
            await link.write_stdin(b"\n")
            out, _, record = await collect(link)
            await link.close()
            outputs.append(out)
            assert record.exit_code == 0 and read_exit(bundle) == record
        assert outputs == [b"", b"x\n"]  # the container layer persists between runs

    box.run(scenario)


def test_exec_joins_the_running_container(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(
            ["sh", "-c", "echo ready; read x; echo bye"], open_stdin=True, memory=64 << 20
        )
        link = box.track(await launcher.run(cid, bundle, log_path=f"{bundle}/log.json"))
        frames = link.frames()
        assert await anext(frames) == (1, b"ready\n")

        ex = await launcher.exec(
            cid,
            bundle,
            ExecSpec(
                ["sh", "-c", "echo $$; hostname; cat /proc/1/cmdline; echo; id; exit 4"],
                env=["PATH=/bin"],
            ),
        )
        out, err, record = await collect(ex)
        await ex.close()
        pid, hostname, cmdline, ident = out.decode().splitlines()
        assert pid != "1" and hostname == "boxhost"
        assert cmdline.split("\0")[:2] == ["sh", "-c"]  # it sees the container's PID 1
        assert ident == "uid=0(root) gid=0"
        assert record.exit_code == 4 and read_exit(bundle) is None  # the container runs on

        ex = await launcher.exec(
            cid, bundle, ExecSpec(["id"], env=["PATH=/bin"], uid=1000, gid=1000)
        )
        out, _, _ = await collect(ex)
        await ex.close()
        assert out == b"uid=1000 gid=1000\n"

        ex = await launcher.exec(cid, bundle, ExecSpec(["tty"], env=["PATH=/bin"], terminal=True))
        out, _, _ = await collect(ex)
        await ex.close()
        assert out == b"/dev/pts/0\r\n"  # the container's own devpts

        ex = await launcher.exec(cid, bundle, ExecSpec(["sleep", "30"], env=["PATH=/bin"]))
        assert str(ex.pid) in cgroup_dir("memory", cid, "cgroup.procs").read_text().split()
        await ex.kill(signal.SIGKILL)
        assert (await ex.wait()).exit_code == 137
        await ex.close()

        with pytest.raises(RuntimeFailure) as info:
            await launcher.exec(cid, bundle, ExecSpec(["nosuchcmd"], env=["PATH=/bin"]))
        assert info.value.kind == "not-found"

        # An exec'd process dies with the container.
        ex = await launcher.exec(cid, bundle, ExecSpec(["sleep", "30"], env=["PATH=/bin"]))
        await link.write_stdin(b"\n")
        assert [f async for f in frames] == [(1, b"bye\n")]
        assert (await link.wait()).exit_code == 0
        assert (await ex.wait()).exit_code == 137
        await ex.close()
        await link.close()

        with pytest.raises(RuntimeFailure):
            await launcher.exec(cid, bundle, ExecSpec(["true"]))

    box.run(scenario)


def test_many_containers_at_once(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        async def one(i: int) -> tuple[str, int]:
            out, _, record = await run_to_end(
                box, launcher, ["sh", "-c", f"echo container {i}; exit {i}"]
            )
            return out, record.exit_code

        results = await asyncio.gather(*(one(i) for i in range(12)))
        assert results == [(f"container {i}\n", i) for i in range(12)]

    box.run(scenario)


def test_a_new_daemon_reattaches_to_running_containers(box: Box) -> None:
    async def scenario(first: Launcher) -> None:
        cid, bundle = box.bundle(["sh", "-c", "read x; echo got $x; exit 9"], open_stdin=True)
        link = box.track(await first.run(cid, bundle, log_path=f"{bundle}/log.json"))
        await link.close()
        await first.close()  # the old daemon is gone, forkserver included
        second = Launcher(str(box.tmp / "run2"))  # a new daemon: it never started this container
        again = await second.reattach(cid, bundle)
        assert again is not None and again.pid == link.pid
        await again.write_stdin(b"hi\n")
        out, _, record = await collect(again)
        assert out == b"got hi\n" and record.exit_code == 9
        await again.close()

    box.run(scenario)


def test_an_image_with_many_layers(box: Box) -> None:
    # 100 layers with long names: far over mount(2)'s one page of options.
    layers = []
    for i in range(100):
        layer = box.tmp / "layers" / f"{i:064x}" / "diff"
        layer.mkdir(parents=True)
        (layer / f"file{i}").write_text(f"{i}\n")
        layers.append(str(layer))
    (Path(layers[0]) / "shadowed").write_text("top\n")  # the first lowerdir is the top-most
    (Path(layers[-1]) / "shadowed").write_text("bottom\n")

    async def scenario(launcher: Launcher) -> None:
        out, _, record = await run_to_end(
            box,
            launcher,
            ["sh", "-c", "cat /file0 /file99 /shadowed"],
            rootfs_lower=[*layers, str(box.layer)],
        )
        assert out == "0\n99\ntop\n" and record.exit_code == 0

    box.run(scenario)


def test_pause_resume_and_stats(box: Box) -> None:
    async def scenario(launcher: Launcher) -> None:
        cid, bundle = box.bundle(
            ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; done"],
            memory=64 << 20,
            pids_limit=20,
        )
        link = box.track(await launcher.run(cid, bundle, log_path=""))
        await asyncio.sleep(0.05)
        await link.pause()
        assert cgroup_dir("freezer", cid, "freezer.state").read_text().strip() == "FROZEN"
        stats = await link.stats()
        await asyncio.sleep(0.1)
        # Nothing runs while paused: not a nanosecond of CPU.
        assert (await link.stats())["cpu"]["total_usage_ns"] == stats["cpu"]["total_usage_ns"] > 0
        assert stats["memory"]["limit"] == 64 << 20 and stats["memory"]["usage"] > 0
        assert stats["pids"]["limit"] == 20 and stats["pids"]["current"] >= 1
        await link.resume()
        await asyncio.sleep(0.05)
        assert (await link.stats())["cpu"]["total_usage_ns"] > stats["cpu"]["total_usage_ns"]
        await link.pause()
        await link.kill(signal.SIGKILL)  # a paused container can still be killed
        assert (await link.wait()).exit_code == 137
        await link.close()

    box.run(scenario)
