"""Shared fixtures: a real Dockyard daemon per test session, and its clients.

The `daemon` fixture starts `python -m dockyard daemon` on a private unix
socket, a free TCP port on 127.0.0.1 and a private data root under
/tmp/dky-XXXX (short, so the socket path stays far below the 108-byte limit),
imports busybox into it with `dockyard image bootstrap busybox`, and at the end removes
every container, stops the daemon with SIGTERM and checks that nothing is left
behind: no process naming the directory, no mount under it, no new cgroup.

Unit tests never request it, so they run without root and without a daemon.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
DOCKER_CLI = shutil.which("docker")
CGROUP_ROOT = Path("/sys/fs/cgroup")
HEX64_NAME = re.compile(r"^[0-9a-f]{64}$")
# Generous, so a loaded 2-core CI machine does not turn slowness into failures.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
# Port 1 on loopback: nothing listens there (see Daemon.env).
DEAD_PROXY = "http://127.0.0.1:1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker_cli: needs the real docker CLI (skipped without it)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if DOCKER_CLI:
        return
    skip = pytest.mark.skip(reason="the docker CLI is not installed (no `docker` on PATH)")
    for item in items:
        if "docker_cli" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------
# Small HTTP helpers: the tests talk to the daemon without going through our
# own client package, so a bug there cannot hide a bug in the daemon.


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        """The `message` of a Docker API error body, or the raw body."""
        try:
            return str(self.json().get("message", ""))
        except (ValueError, AttributeError):
            return self.body.decode(errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def processes_mentioning(text: str) -> dict[int, str]:
    me = os.getpid()
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != me:
            cmd = _cmdline(int(entry.name))
            if text in cmd:
                found[int(entry.name)] = cmd
    return found


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, start time in ticks), from /proc/*/stat."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return table


def descendants(root: int) -> dict[int, int]:
    """Every process below `root` (pid -> start time, to tell pid reuse)."""
    table = process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _start) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, int] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = table[pid][1]
        todo += children.get(pid, [])
    return found


def still_running(procs: dict[int, int]) -> dict[int, str]:
    table = process_table()
    return {
        pid: _cmdline(pid) for pid, start in procs.items() if table.get(pid, (0, -1))[1] == start
    }


def mounts_under(root: str) -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == root or point.startswith(root + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def container_cgroups(ids: set[str]) -> list[str]:
    """Cgroup directories, on v1 and v2 alike, named after one of `ids`.

    The runtime's default cgroup_parent is `dockyard` for every daemon, so a
    developer's own daemon (or a parallel test run) shares that parent; only
    directories of containers this test daemon created are its own.
    """
    found: list[str] = []
    if not ids or not CGROUP_ROOT.is_dir():
        return found
    hierarchies = [CGROUP_ROOT] + [p for p in CGROUP_ROOT.iterdir() if p.is_dir()]
    for h in hierarchies:
        try:
            parents = [p for p in h.iterdir() if p.is_dir() and p.name.startswith("dockyard")]
        except OSError:
            continue
        for parent in parents:
            for dirpath, dirs, _files in os.walk(parent):
                found += [os.path.join(dirpath, d) for d in dirs if d in ids]
    return sorted(found)


class ContainerDirWatch:
    """Records every `<data-root>/containers/<id>` the daemon ever creates.

    inotify, so containers that live and die inside one test (`run --rm`) are
    seen too; teardown then knows exactly which cgroups were this daemon's.
    """

    IN_CREATE = 0x100
    IN_MOVED_TO = 0x80
    IN_NONBLOCK = 0o4000
    IN_CLOEXEC = 0o2000000

    def __init__(self, data_root: Path) -> None:
        self.data_root = data_root
        self.ids: set[str] = set()
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(self.IN_NONBLOCK | self.IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self._wds: dict[int, str] = {}
        self._stop = threading.Event()
        self._watch(data_root)
        self._watch(data_root / "containers")
        self._thread = threading.Thread(target=self._loop, name="container-dir-watch", daemon=True)
        self._thread.start()

    def _watch(self, path: Path) -> None:
        if str(path) in self._wds.values() or not path.is_dir():
            return
        wd = self._libc.inotify_add_watch(
            self._fd, str(path).encode(), self.IN_CREATE | self.IN_MOVED_TO
        )
        if wd >= 0:
            self._wds[wd] = str(path)
        if path.name == "containers":
            # Entries made before the watch existed.
            self.ids.update(p.name for p in path.iterdir() if HEX64_NAME.match(p.name))

    def _loop(self) -> None:
        header = struct.Struct("iIII")
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.2)
            if not ready:
                continue
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            off = 0
            while off + header.size <= len(buf):
                wd, _mask, _cookie, length = header.unpack_from(buf, off)
                name = buf[off + header.size : off + header.size + length].rstrip(b"\0").decode()
                off += header.size + length
                parent = self._wds.get(wd, "")
                if parent == str(self.data_root) and name == "containers":
                    self._watch(self.data_root / "containers")
                elif parent.endswith("/containers") and HEX64_NAME.match(name):
                    self.ids.add(name)

    def close(self) -> set[str]:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._fd)
        return self.ids


# --------------------------------------------------------------------------


@dataclass
class Daemon:
    """One `dockyard daemon` process with its own socket, port and data root."""

    base: Path
    data_root: Path
    tcp_port: int
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return str(self.base / "d.sock")

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def tcp(self) -> str:
        return f"tcp://127.0.0.1:{self.tcp_port}"

    @property
    def pidfile(self) -> Path:
        return self.base / "daemon.pid"

    @property
    def log_path(self) -> Path:
        return self.base / "daemon.log"

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION")
        }
        env.update(
            DOCKER_HOST=self.host,
            DOCKYARD_HOST=self.host,
            # The docker CLI reads contexts and plugins from here; keep the
            # user's ~/.docker out of the tests.
            DOCKER_CONFIG=str(self.base / "docker-config"),
            DOCKER_CLI_HINTS="false",
            PYTHONUNBUFFERED="1",
            # Tests send nothing beyond loopback: a pull of an image from any
            # registry that is not on loopback (docker.io for a missing
            # `busybox2`) goes to a proxy port where nothing listens, and fails
            # at once instead of resolving a public name.
            HTTP_PROXY=DEAD_PROXY,
            HTTPS_PROXY=DEAD_PROXY,
            NO_PROXY="127.0.0.1,localhost,::1",
        )
        for key in ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "ALL_PROXY"):
            env.pop(key, None)
        return env

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "dockyard", "daemon",
            "-H", self.host,
            "-H", self.tcp,
            "--data-root", str(self.data_root),
            "--pidfile", str(self.pidfile),
            "--log-level", "debug",
            # Test daemons' bridges come from a range of their own, wide enough for
            # the many that run at once on one machine.
            "--default-address-pool", "base=10.200.0.0/14,size=24",
            *self.extra_args,
        ]  # fmt: skip

    # -- lifecycle --------------------------------------------------------

    def launch(self) -> Daemon:
        """Start the process without waiting for it to answer."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env, cwd="/"
        )
        log.close()
        return self

    def start(self) -> Daemon:
        self.launch()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"daemon exited with code {self.proc.returncode} before answering /_ping\n"
                    + self.log_tail()
                )
            try:
                if self.request("GET", "/_ping", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"daemon did not answer /_ping within {timeout}s\n" + self.log_tail())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Send `sig` and wait; returns the exit code, None if it did not exit."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no daemon log)"
        return "--- daemon log (tail) ---\n" + "\n".join(text[-lines:])

    # -- clients ------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Response:
        """One HTTP request over the unix socket, answer read in full."""
        hdrs = dict(headers or {})
        if isinstance(body, dict | list):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        conn = UnixHTTPConnection(self.socket, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def _run(
        self, argv: list[str], input: bytes | str | None, timeout: float, env: dict[str, str] | None
    ) -> subprocess.CompletedProcess[str]:
        run_env = self.env
        if env:
            run_env.update(env)
        data = input.decode() if isinstance(input, bytes) else input
        return subprocess.run(
            argv,
            input=data,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=run_env,
            stdin=None if data is not None else subprocess.DEVNULL,
        )

    def dockyard(
        self,
        *args: str,
        input: bytes | str | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the dockyard CLI of this checkout against this daemon."""
        return self._run([sys.executable, "-m", "dockyard", *args], input, timeout, env)

    def docker(
        self,
        *args: str,
        input: bytes | str | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real docker CLI against this daemon (skips when not installed)."""
        if DOCKER_CLI is None:
            pytest.skip("the docker CLI is not installed (no `docker` on PATH)")
        return self._run([DOCKER_CLI, *args], input, timeout, env)

    def import_busybox(self) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "dockyard", "image", "bootstrap", "busybox"],
            capture_output=True,
            text=True,
            timeout=180,
            env=self.env,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"dockyard image bootstrap busybox failed ({proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}\n{self.log_tail()}"
            )
        return proc.stdout.strip()

    def remove_all_containers(self) -> list[str]:
        """`dockyard rm -f $(dockyard ps -aq)`, falling back to the API."""
        problems: list[str] = []
        ps = self.dockyard("ps", "-aq", "--no-trunc", timeout=30)
        ids = ps.stdout.split() if ps.returncode == 0 else []
        if ids:
            rm = self.dockyard("rm", "-f", *ids, timeout=120)
            if rm.returncode != 0:
                problems.append(f"dockyard rm -f failed: {rm.stderr.strip()}")
        try:
            left = self.request("GET", "/containers/json?all=1").json()
        except (OSError, ValueError) as e:
            return problems + [f"listing containers after rm -f failed: {e}"]
        for c in left:
            problems.append(f"container {c.get('Id', '?')[:12]} still listed after rm -f")
            self.request("DELETE", f"/containers/{c['Id']}?force=1")
        return problems


def make_base_dir() -> Path:
    base = Path(tempfile.mkdtemp(prefix="dky-", dir="/tmp"))
    # Lets scripts/cleanup-test-leftovers tell a live run from a killed one.
    (base / "owner.pid").write_text(str(os.getpid()))
    (base / "docker-config").mkdir()
    return base


def new_daemon(
    base: Path | None = None, data_root: Path | None = None, extra_args: list[str] | None = None
) -> Daemon:
    """A Daemon (not started); several may share a base dir or data root."""
    base = base or make_base_dir()
    return Daemon(
        base=base,
        data_root=data_root or base / "root",
        tcp_port=free_port(),
        extra_args=extra_args or [],
    )


def lingering_processes(base: Path, grace: float = 5.0) -> dict[int, str]:
    """Processes that name `base` in their argv: the daemon's forkserver and every
    monitor it forked (they carry its argv, which names the data root's run dir),
    orphaned ones too. A monitor may take a moment to exit after its container did."""
    deadline = time.monotonic() + grace
    while (found := processes_mentioning(str(base))) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def leftovers(base: Path, container_ids: set[str]) -> list[str]:
    """What a cleanly stopped daemon must not leave behind."""
    problems = []
    for pid, cmd in lingering_processes(base).items():
        problems.append(f"process {pid} still running: {cmd}")
    for point in mounts_under(str(base)):
        problems.append(f"still mounted: {point}")
    for cg in container_cgroups(container_ids):
        problems.append(f"cgroup left behind: {cg}")
    return problems


def network_leftovers(data_root: Path) -> list[str]:
    """The default bridge and the firewall chains of a daemon on `data_root`."""
    from dockyard.network.bridge import daemon_suffix, default_bridge_name

    problems = []
    bridge = default_bridge_name(str(data_root))
    if Path(f"/sys/class/net/{bridge}").exists():
        problems.append(f"bridge {bridge} still exists")
    suffix = daemon_suffix(str(data_root))
    for table in ("filter", "nat"):
        listing = subprocess.run(
            ["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True, check=False
        ).stdout
        problems += [
            f"iptables rule left behind: {line}"
            for line in listing.splitlines()
            if "DOCKYARD-" in line and line.split()[-1].endswith(suffix) or bridge in line
        ]
    return problems


def force_network_clean(data_root: Path) -> None:
    """What a killed daemon leaves of its network: its bridge and its chains."""
    from dockyard.network.bridge import daemon_suffix, default_bridge_name

    bridge = default_bridge_name(str(data_root))
    subprocess.run(["ip", "link", "del", bridge], stderr=subprocess.DEVNULL, check=False)
    suffix = daemon_suffix(str(data_root))
    if not suffix:
        return
    for table in ("filter", "nat"):
        listing = subprocess.run(
            ["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True, check=False
        ).stdout
        for line in listing.splitlines():
            if line.startswith("-A ") and line.split()[-1].endswith(suffix):
                argv = ["iptables", "-w", "-t", table, "-D", *line.split()[1:]]
                subprocess.run(argv, stderr=subprocess.DEVNULL, check=False)
        for line in listing.splitlines():
            if line.startswith("-N ") and line.endswith(suffix):
                chain = line.split()[1]
                for op in ("-F", "-X"):
                    subprocess.run(
                        ["iptables", "-w", "-t", table, op, chain],
                        stderr=subprocess.DEVNULL,
                        check=False,
                    )


def force_clean(base: Path) -> None:
    # A killed daemon's monitors live on (orphaned; their argv names the data root):
    # killed, their containers die with them, and their cgroups are left empty.
    ids = {p.name for p in base.glob("*/containers/*")} | {
        p.name for p in base.glob("containers/*")
    }
    for pid in processes_mentioning(str(base)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while processes_mentioning(str(base)) and time.monotonic() < deadline:
        time.sleep(0.05)
    # (their processes die a moment after their monitors: rmdir fails until then)
    while (cgroups := container_cgroups(ids)) and time.monotonic() < deadline + 5:
        for cg in sorted(cgroups, key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(cg)
        time.sleep(0.05)
    for point in mounts_under(str(base)):
        subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL, check=False)
    for data_root in {base / "root", *base.glob("*/")}:
        if (data_root / "dockyard.db").exists():
            force_network_clean(data_root)
    shutil.rmtree(base, ignore_errors=True)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the daemon creates namespaces, mounts and cgroups")


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    """The session's daemon, with busybox:latest imported."""
    require_root()
    d = new_daemon()
    try:
        d.start()
        watch = ContainerDirWatch(d.data_root)
        d.import_busybox()
    except Exception:
        d.kill()
        force_clean(d.base)
        raise
    yield d
    problems = shut_down(d, watch)
    log = d.log_tail()
    force_clean(d.base)
    if problems:
        pytest.fail("the test daemon left things behind:\n  " + "\n  ".join(problems) + "\n" + log)


def shut_down(d: Daemon, watch: ContainerDirWatch | None) -> list[str]:
    """rm -f every container, SIGTERM, then list whatever was left behind."""
    listed = set()
    with contextlib.suppress(OSError, ValueError):
        listed = {c["Id"] for c in d.request("GET", "/containers/json?all=1").json()}
    problems = d.remove_all_containers()
    # Monitors, forkservers and container processes all start below the
    # daemon; after a clean stop none of them may remain.
    below = descendants(d.proc.pid) if d.proc is not None else {}
    code = d.stop(signal.SIGTERM)
    if code is None:
        problems.append(f"daemon did not exit within {STOP_TIMEOUT}s of SIGTERM")
        d.kill()
    elif code != 0:
        problems.append(f"daemon exited with code {code} after SIGTERM")
    for pid, cmd in still_running(below).items():
        problems.append(f"process {pid} (started by the daemon) still running: {cmd}")
    ids = watch.close() if watch else set()
    if watch and not listed <= ids:
        # The watch must have seen every container still listed, or its
        # cgroup check below proves nothing.
        problems.append(f"container dir watch missed {sorted(listed - ids)}")
    if code is not None:
        problems += network_leftovers(d.data_root)
    return problems + leftovers(d.base, ids)


@pytest.fixture
def daemon_factory() -> Iterator[Any]:
    """Start extra daemons (restart and conflict tests); each is checked for
    leftovers like the session's daemon when the test ends."""
    require_root()
    started: list[Daemon] = []
    watches: dict[Path, ContainerDirWatch] = {}

    def start(
        base: Path | None = None,
        data_root: Path | None = None,
        extra_args: list[str] | None = None,
        wait: bool = True,
    ) -> Daemon:
        d = new_daemon(base, data_root, extra_args)
        started.append(d)
        d.start() if wait else d.launch()
        if wait and d.data_root not in watches:
            watches[d.data_root] = ContainerDirWatch(d.data_root)
        return d

    yield start
    problems: list[str] = []
    bases = {d.base for d in started}
    for d in reversed(started):
        if d.proc is not None and d.proc.poll() is None:
            watch = watches.pop(d.data_root, None)
            problems += shut_down(d, watch)
    for watch in watches.values():
        watch.close()
    for base in bases:
        force_clean(base)
    if problems:
        pytest.fail("a test daemon left things behind:\n  " + "\n  ".join(problems))


@pytest.fixture
def unique() -> Any:
    """unique('x') -> 'x-1a2b3c4d': names that never collide across tests or runs."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    return make
