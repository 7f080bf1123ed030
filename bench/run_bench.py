#!/usr/bin/env python3
"""Time `dockyard run --rm busybox true` against the reference engines.

    python3 bench/run_bench.py [-n 20] [--host unix:///run/dockyard.sock]
        [--dockerd-host unix:///run/docker-bench.sock] [--sequential]

Measures whole processes, as a user waits for them: a warm-up round, then N
timed rounds. By default the rounds are interleaved (each round runs every
command once), so background load on the machine hits every engine alike;
--sequential times each command's N runs back to back instead. The commands:

    dockyard run --rm busybox true
    dockyard run --rm --network none busybox true
    docker -H <Dockyard's socket> run --rm busybox true      (our daemon without
    docker -H <Dockyard's socket> run --rm --network none ... our CLI's start-up)
    docker -H <dockerd's socket> run --rm busybox true
    docker -H <dockerd's socket> run --rm --network none busybox true
    podman run --rm --network none --ulimit ... busybox true
    runc run / crun run on an equivalent bundle (busybox rootfs, `runc spec`
    config, args ["true"])

and `run --rm busybox echo hello world` through dockyard and the docker CLI on
both daemons (checking the output). Each reference engine is used only where it
is installed and ready, else its row says why not: docker only against a dockerd
that is ALREADY running (--dockerd-host, or the first of
/run/docker-bench.sock and /var/run/docker.sock whose /_ping answers
`Server: Docker/...`) and holds a busybox image; podman only when
DOCKYARD_BENCH_PODMAN=1 (it is daemonless, so running it starts its own
processes) and it holds a busybox image. This script never starts a daemon and
never pulls. Prints median and p90 and the ratio dockyard / each, then where
the milliseconds of one `dockyard run` go: CLI start-up and imports, each API
round trip, and the container's start trace
(`<data-root>/containers/<id>/start-trace.json`) when the runtime wrote one.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_HOST = "unix:///run/dockyard.sock"


@dataclass
class Result:
    label: str
    times: list[float] = field(default_factory=list)  # seconds
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p90(self) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def time_command(label: str, argv: list[str], n: int, env: dict[str, str] | None = None) -> Result:
    """Warm-up once, then n timed runs; stops at the first failure."""
    result = Result(label)
    for i in range(n + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
            result.error = f"exit {proc.returncode}: {msg[-1] if msg else ''}"
            return result
        if i > 0:
            result.times.append(elapsed)
    return result


class BenchError(Exception):
    pass


@dataclass
class Bench:
    """One command of the table; `run_once` raises BenchError (or OSError) on failure."""

    label: str
    run_once: Callable[[], None] | None = None
    skip: str = ""  # why it is not measured
    group: str = "true"  # ratios compare the rows of one group
    mine: bool = False  # a dockyard CLI row: the numerator of the ratios
    result: Result = field(init=False)

    def __post_init__(self) -> None:
        self.result = Result(self.label, error=self.skip)


def command(
    argv: list[str], env: dict[str, str] | None = None, expect: bytes | None = None
) -> Callable[[], None]:
    def once() -> None:
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
            raise BenchError(f"exit {proc.returncode}: {msg[-1] if msg else ''}")
        if expect is not None and proc.stdout != expect:
            raise BenchError(f"printed {proc.stdout[:60]!r}, not {expect!r}")

    return once


def measure(benches: list[Bench], n: int, interleave: bool) -> None:
    """A warm-up, then n timed runs of each; a command stops at its first failure."""
    live = [b for b in benches if b.run_once is not None and not b.skip]

    def one(b: Bench, record: bool) -> bool:
        assert b.run_once is not None
        t0 = time.perf_counter()
        try:
            b.run_once()
        except (BenchError, OSError, subprocess.SubprocessError) as e:
            b.result.error = str(e) or type(e).__name__
            b.result.times.clear()
            return False
        if record:
            b.result.times.append(time.perf_counter() - t0)
        return True

    if interleave:
        for i in range(n + 1):
            for b in live:
                if not b.result.error:
                    one(b, record=i > 0)
    else:
        for b in live:
            for i in range(n + 1):
                if not one(b, record=i > 0):
                    break


# -- dockyard ---------------------------------------------------------------------


def dockyard_argv() -> list[str]:
    script = REPO / ".venv" / "bin" / "dockyard"
    if script.exists():
        return [str(script)]
    found = shutil.which("dockyard")
    return [found] if found else [sys.executable, "-m", "dockyard"]


def stale_bytecode() -> list[str]:
    """Dockyard sources whose cached .pyc is missing or older than the source.

    Where PYTHONDONTWRITEBYTECODE is set (as in many dev shells) such a module is
    compiled again by every `dockyard` process, which an installed Dockyard
    (scripts/install.sh byte-compiles) never pays: a few ms per changed module.
    """
    src = REPO / "src" / "dockyard"
    stale = []
    for py in src.rglob("*.py"):
        pyc = Path(importlib.util.cache_from_source(str(py)))
        if not pyc.exists() or pyc.stat().st_mtime < py.stat().st_mtime:
            stale.append(str(py.relative_to(REPO)))
    return sorted(stale)


def dockyard_env(host: str) -> dict[str, str]:
    """The environment of the dockyard CLI: bytecode may be written, as on an install."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["DOCKYARD_HOST"] = host
    return env


def dockyard_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Api:
    """Just enough of an Engine API client to time each call of a `run`."""

    def __init__(self, host: str) -> None:
        self.host = host

    def _sock(self) -> socket.socket:
        if self.host.startswith("unix://"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(self.host[len("unix://") :])
            return s
        h, _, p = self.host.split("://", 1)[-1].rpartition(":")
        return socket.create_connection((h or "127.0.0.1", int(p)), timeout=30)

    def conn(self) -> http.client.HTTPConnection:
        if self.host.startswith("unix://"):
            return UnixHTTPConnection(self.host[len("unix://") :])
        h, _, p = self.host.split("://", 1)[-1].rpartition(":")
        return http.client.HTTPConnection(h or "127.0.0.1", int(p), timeout=30)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        c = self.conn()
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw) if raw else None
            except ValueError:
                return r.status, raw
        finally:
            c.close()

    def open_stream(self, method: str, path: str, upgrade: bool) -> socket.socket:
        """Send a request and return the socket once the response headers are in."""
        s = self._sock()
        # Connection: close, so a streamed answer (wait) ends with EOF.
        extra = "Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else "Connection: close\r\n"
        s.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: 0\r\n\r\n".encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError(f"{path}: connection closed before headers")
            buf += chunk
        status = buf.split(b"\r\n", 1)[0].decode()
        if " 200 " not in status + " " and " 101 " not in status + " ":
            raise OSError(f"{path}: {status}")
        return s


def breakdown(host: str) -> None:
    py = dockyard_python()
    print("\nWhere the time of one `dockyard run --rm busybox true` goes")

    env = dockyard_env(host)

    def med(argv: list[str], n: int = 7) -> float:
        return time_command("", argv, n, env).median * 1000

    interp = med([py, "-c", "pass"])
    cli = med([py, "-c", "import dockyard.cli.main"])
    print(f"  python start-up (python -c pass)          {interp:8.1f} ms")
    print(f"  + import dockyard.cli.main                 {cli - interp:8.1f} ms")
    # What a real `run` imports (the CLI imports per verb, lazily).
    proc = subprocess.run(
        [py, "-X", "importtime", "-m", "dockyard", "run", "--rm", "busybox", "true"],
        capture_output=True,
        text=True,
        env=env,
    )
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if name.startswith(" ") and not name.startswith("  "):  # top-level imports only
                rows.append((int(parts[1]), name.strip()))
    total = sum(us for us, _ in rows) / 1000
    print(f"  imports during a real `run` (-X importtime) {total:8.1f} ms; the largest:")
    for us, name in sorted(rows, reverse=True)[:6]:
        print(f"      {name:<36} {us / 1000:8.1f} ms")

    api = Api(host)
    try:
        t = time.perf_counter()
        status, created = api.call(
            "POST",
            "/containers/create",
            {"Image": "busybox", "Cmd": ["true"], "AttachStdout": True, "AttachStderr": True},
        )
        t_create = time.perf_counter() - t
        if status != 201:
            print(f"  API: create answered {status}: {created}")
            return
        cid = created["Id"]
        t = time.perf_counter()
        attach = api.open_stream(
            "POST", f"/containers/{cid}/attach?stream=1&stdout=1&stderr=1", upgrade=True
        )
        t_attach = time.perf_counter() - t
        t = time.perf_counter()
        wait = api.open_stream("POST", f"/containers/{cid}/wait?condition=next-exit", upgrade=False)
        t_wait_hdr = time.perf_counter() - t
        t = time.perf_counter()
        status, _ = api.call("POST", f"/containers/{cid}/start")
        t_start = time.perf_counter() - t
        t = time.perf_counter()
        with contextlib.suppress(OSError):
            while wait.recv(4096):
                pass
        t_exit = time.perf_counter() - t
        attach.close()
        wait.close()
        print(f"  API create                                 {t_create * 1000:8.1f} ms")
        print(f"  API attach (until hijacked)                {t_attach * 1000:8.1f} ms")
        print(f"  API wait (until headers)                   {t_wait_hdr * 1000:8.1f} ms")
        print(f"  API start (until 204)                      {t_start * 1000:8.1f} ms")
        print(f"  start answered -> wait returns (exit)      {t_exit * 1000:8.1f} ms")
        show_start_trace(api, cid)
        api.call("DELETE", f"/containers/{cid}?force=1")
    except OSError as e:
        print(f"  API breakdown failed: {e}")


def show_start_trace(api: Api, cid: str) -> None:
    _, info = api.call("GET", "/info")
    root = (info or {}).get("DockerRootDir") if isinstance(info, dict) else None
    path = Path(root or "/var/lib/dockyard") / "containers" / cid / "start-trace.json"
    if not path.exists():
        print(f"  (no start trace at {path})")
        return
    try:
        trace = json.loads(path.read_text())
    except ValueError as e:
        print(f"  start trace unreadable: {e}")
        return
    print(f"  start trace ({path}):")
    if isinstance(trace, dict) and isinstance(trace.get("phases"), dict):
        for name, ns in trace["phases"].items():
            print(f"      {name:<44} {float(ns) / 1e6:8.2f} ms")
    calls = trace.get("calls") if isinstance(trace, dict) else trace
    if isinstance(calls, dict):  # (call, args, ns, start) arrays by process
        calls = [
            {"call": c[0], "args": c[1], "ns": c[2], "process": proc}
            for proc, cs in calls.items()
            for c in cs
        ]
    if isinstance(calls, list) and all(isinstance(c, dict) for c in calls):
        # Sum by (process, call): what the kernel work of a start costs.
        totals: dict[tuple[str, str], list[float]] = {}
        for c in calls:
            name = str(c.get("call") or c.get("name") or c.get("syscall") or "?")
            if name in ("mount", "umount2") and c.get("args"):
                target = str(c["args"][1] if len(c["args"]) > 1 else c["args"][0])
                name += " " + (
                    target.split("/rootfs", 1)[1] or "/" if "/rootfs" in target else target
                )
            key = (str(c.get("process", "")), name[:48])
            ns = float(c.get("ns") or c.get("duration_ns") or 0)
            totals.setdefault(key, []).append(ns)
        ranked = sorted(totals.items(), key=lambda kv: -sum(kv[1]))
        all_ns = sum(sum(v) for v in totals.values())
        print(f"      {len(calls)} kernel calls, {all_ns / 1e6:.2f} ms in all; the costliest:")
        for (proc, name), ns in ranked[:15]:
            print(f"      {proc:>8} {name:<48} x{len(ns):<3} {sum(ns) / 1e6:8.2f} ms")
    elif not isinstance(trace, dict) or "phases" not in trace:
        print("      " + json.dumps(trace, indent=2)[:3000].replace("\n", "\n      "))


# -- reference engines ------------------------------------------------------------


def busybox_layer() -> bytes:
    """The same rootfs tar as `dockyard image bootstrap busybox` imports as busybox:latest."""
    sys.path.insert(0, str(REPO / "src"))
    from dockyard.cli.base_images import busybox_rootfs

    return busybox_rootfs()


@contextlib.contextmanager
def oci_bundle(runtime: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dky-bench-") as tmp:
        bundle = Path(tmp)
        rootfs = bundle / "rootfs"
        rootfs.mkdir()
        with tarfile.open(fileobj=io.BytesIO(busybox_layer())) as tar:
            tar.extractall(rootfs, filter="tar")
        subprocess.run([runtime, "spec"], cwd=bundle, check=True, capture_output=True)
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["args"] = ["true"]
        config["process"]["terminal"] = False
        (bundle / "config.json").write_text(json.dumps(config))
        yield bundle


@contextlib.contextmanager
def hugetlb_for_crun() -> Iterator[None]:
    """crun on a cgroup-v1 host wants the hugetlb controller mounted."""
    cg = Path("/sys/fs/cgroup")
    target = cg / "hugetlb"
    mounted_here = made_here = False
    v1 = (cg / "memory").is_dir() and not (cg / "cgroup.controllers").exists()
    if v1 and not os.path.ismount(target):
        made_here = not target.exists()
        target.mkdir(exist_ok=True)
        r = subprocess.run(
            ["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(target)], capture_output=True
        )
        mounted_here = r.returncode == 0
    try:
        yield
    finally:
        if mounted_here:
            subprocess.run(["umount", str(target)], capture_output=True)
        if made_here:
            with contextlib.suppress(OSError):
                target.rmdir()


def oci_bench(runtime: str, stack: contextlib.ExitStack) -> Bench:
    """`<runtime> run` on a busybox bundle; the bundle lives as long as `stack`."""
    path = shutil.which(runtime)
    label = f"{runtime} run (OCI bundle)"
    if not path:
        return Bench(label, skip="not installed")
    if os.geteuid() != 0:
        return Bench(label, skip="not root")
    if runtime == "crun":
        stack.enter_context(hugetlb_for_crun())
    bundle = stack.enter_context(oci_bundle(path))

    def once() -> None:
        cid = f"dkybench-{uuid.uuid4().hex[:12]}"
        proc = subprocess.run(
            [path, "run", "--bundle", str(bundle), cid],
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        if proc.returncode != 0:
            subprocess.run([path, "delete", "--force", cid], capture_output=True)
            msg = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
            raise BenchError(f"exit {proc.returncode}: {msg[-1] if msg else ''}")

    return Bench(label, once)


def server_of(host: str) -> str | None:
    """The Server header of GET /_ping on a unix:// host; None when nothing answers."""
    if not host.startswith("unix://"):
        return None
    sock = host[len("unix://") :]
    if not os.path.exists(sock):
        return None
    try:
        c = UnixHTTPConnection(sock, timeout=3)
        c.request("GET", "/_ping")
        r = c.getresponse()
        r.read()
        c.close()
    except OSError:
        return None
    if r.status != 200:
        return None
    return r.getheader("Server") or ""


DOCKERD_HOSTS = ("unix:///run/docker-bench.sock", "unix:///var/run/docker.sock")


def find_dockerd(wanted: str | None, dockyard_host: str) -> tuple[str | None, str]:
    """(host, "Docker/version") of a RUNNING dockerd, or (None, why not)."""
    ours = dockyard_host[len("unix://") :] if dockyard_host.startswith("unix://") else None
    why = "no dockerd running (this script starts none)"
    for host in [wanted] if wanted else DOCKERD_HOSTS:
        sock = host[len("unix://") :] if host.startswith("unix://") else None
        if sock and ours and os.path.realpath(sock) == os.path.realpath(ours):
            why = f"{host} is Dockyard's own socket"
            continue
        server = server_of(host)
        if server is None:
            why = f"nothing answers on {host} (this script starts no dockerd)"
            continue
        if not server.startswith("Docker/"):
            why = f"{host} answers as {server or 'an unnamed server'}, not dockerd"
            continue
        return host, server.split(" ")[0]
    return None, why


def docker_env() -> dict[str, str]:
    drop = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
    return {k: v for k, v in os.environ.items() if k not in drop}


def docker_benches(docker: str | None, host: str | None, why: str, name: str) -> list[Bench]:
    """`docker -H host run --rm ...` rows (true, --network none, echo hello world)."""
    rows = [
        (f"docker run --rm busybox true ({name})", ["true"], [], "true", None),
        (
            f"docker run --rm --network none busybox true ({name})",
            ["true"],
            ["--network", "none"],
            "true",
            None,
        ),
        (
            f"docker run --rm busybox echo hello world ({name})",
            ["echo", "hello", "world"],
            [],
            "echo",
            b"hello world\n",
        ),
    ]
    if not docker:
        why = "docker CLI not installed"
    elif host is not None:
        env = docker_env()
        probe = subprocess.run(
            [docker, "-H", host, "image", "inspect", "busybox"], env=env, capture_output=True
        )
        if probe.returncode != 0:
            why = f"{name} has no busybox image (this script pulls nothing)"
        else:
            return [
                Bench(
                    label,
                    command([docker, "-H", host, "run", "--rm", *opts, "busybox", *cmd], env, out),
                    group=group,
                )
                for label, cmd, opts, group, out in rows
            ]
    return [Bench(label, skip=why, group=group) for label, _, _, group, _ in rows]


PODMAN_ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]


def podman_bench() -> Bench:
    label = "podman run --rm --network none busybox true"
    podman = shutil.which("podman")
    if not podman:
        return Bench(label, skip="not installed")
    if os.environ.get("DOCKYARD_BENCH_PODMAN") != "1":
        return Bench(label, skip="daemonless, so it runs only with DOCKYARD_BENCH_PODMAN=1")
    if subprocess.run([podman, "image", "exists", "busybox"], capture_output=True).returncode:
        return Bench(label, skip="podman has no busybox image (this script pulls nothing)")
    argv = [podman, "run", "--rm", "--network", "none", *PODMAN_ULIMITS, "busybox", "true"]
    return Bench(label, command(argv))


def version_of(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (out.strip().splitlines() or ["?"])[0]


# -- report ------------------------------------------------------------------------


def report(benches: list[Bench]) -> None:
    groups: dict[str, list[Bench]] = {}
    for b in benches:
        groups.setdefault(b.group, []).append(b)
    for rows in groups.values():
        mine = [b for b in rows if b.mine and b.result.times]
        names = ", ".join(b.label for b in mine) or "no dockyard row measured"
        print(f"\n{'command':<58} {'median':>9} {'p90':>9}   dockyard/this for: {names}")
        for b in rows:
            r = b.result
            if r.error or not r.times:
                print(f"{r.label:<58} {'-':>9} {'-':>9}   ({r.error or 'not measured'})")
                continue
            ratios = (
                "" if b.mine else "  ".join(f"{m.result.median / r.median:6.2f}x" for m in mine)
            )
            print(f"{r.label:<58} {r.median * 1000:7.1f}ms {r.p90 * 1000:7.1f}ms   {ratios}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="timed runs per command (after one warm-up)")
    ap.add_argument(
        "--host",
        default=os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST,
    )
    ap.add_argument(
        "--dockerd-host",
        default=os.environ.get("DOCKYARD_BENCH_DOCKERD_HOST"),
        help="a running dockerd to compare with (default: the first of "
        + " and ".join(DOCKERD_HOSTS)
        + " that answers)",
    )
    ap.add_argument("--docker-cli", default=shutil.which("docker"), help="the docker CLI to use")
    ap.add_argument(
        "--sequential", action="store_true", help="N runs of one command, then the next"
    )
    ap.add_argument("--no-reference", action="store_true", help="skip runc/crun/docker/podman")
    args = ap.parse_args()

    env = dockyard_env(args.host)
    cli = dockyard_argv()
    stale = stale_bytecode()
    if stale:
        print(
            f"{len(stale)} source(s) newer than their .pyc (e.g. {stale[0]}); the warm-up run "
            "writes those it imports (PYTHONDONTWRITEBYTECODE is dropped for dockyard, as an "
            "install byte-compiles)"
        )
    order = "sequential" if args.sequential else "interleaved rounds"
    print(
        f"dockyard daemon: {args.host}; {args.n} runs each after a warm-up ({order}); "
        f"{os.cpu_count()} CPUs"
    )
    benches = [
        Bench(
            "dockyard run --rm busybox true",
            command([*cli, "run", "--rm", "busybox", "true"], env),
            mine=True,
        ),
        Bench(
            "dockyard run --rm --network none busybox true",
            command([*cli, "run", "--rm", "--network", "none", "busybox", "true"], env),
            mine=True,
        ),
    ]
    echo = Bench(
        "dockyard run --rm busybox echo hello world",
        command([*cli, "run", "--rm", "busybox", "echo", "hello", "world"], env, b"hello world\n"),
        group="echo",
        mine=True,
    )
    with contextlib.ExitStack() as stack:
        if not args.no_reference:
            docker = args.docker_cli
            if docker:
                print(f"docker CLI: {docker}, {version_of([docker, '--version'])}")
            # Our daemon through the real docker CLI: no Python start-up on the client side.
            up = not args.host.startswith("unix://") or server_of(args.host) is not None
            mine_via_docker = docker_benches(
                docker, args.host if up else None, f"nothing answers on {args.host}", "Dockyard"
            )
            dockerd_host, why = find_dockerd(args.dockerd_host, args.host)
            if dockerd_host:
                print(f"dockerd: {dockerd_host}, {why}")
            via_dockerd = docker_benches(docker, dockerd_host, why, "dockerd")
            benches += mine_via_docker[:2] + via_dockerd[:2] + [podman_bench()]
            benches += [oci_bench("runc", stack), oci_bench("crun", stack)]
            benches += [echo, mine_via_docker[2], via_dockerd[2]]
        else:
            benches.append(echo)
        measure(benches, args.n, interleave=not args.sequential)
    report(benches)
    breakdown(args.host)
    return 0 if all(not b.result.error for b in benches if b.mine) else 1


if __name__ == "__main__":
    sys.exit(main())
