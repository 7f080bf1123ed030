#!/usr/bin/env python3
"""Time `dockyard run --rm busybox true` against the reference engines.

    python3 bench/run_bench.py [-n 20] [--host unix:///run/dockyard.sock]

Measures whole processes, as a user waits for them: a warm-up run, then N
timed runs each of

    dockyard run --rm busybox true
    dockyard run --rm --network none busybox true

and, in the same run, only where installed: `runc run` and `crun run` on an
equivalent bundle (busybox rootfs, `runc spec` config, args ["true"]), and
`docker run --rm busybox true` / podman only when such a daemon is ALREADY
running (this script never starts one). Prints median and p90 and the ratio
dockyard / each, then where the milliseconds of one `dockyard run` go: CLI
start-up and imports, each API round trip, and the container's start trace
(`<data-root>/containers/<id>/start-trace.json`) when the runtime wrote one.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.machinery
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


def time_each(label: str, run_once: Callable[[int], None], n: int) -> Result:
    result = Result(label)
    for i in range(n + 1):
        t0 = time.perf_counter()
        try:
            run_once(i)
        except (OSError, subprocess.CalledProcessError) as e:
            result.error = str(e)
            return result
        if i > 0:
            result.times.append(time.perf_counter() - t0)
    return result


# -- dockyard ---------------------------------------------------------------------


def dockyard_argv() -> list[str]:
    script = REPO / ".venv" / "bin" / "dockyard"
    if script.exists():
        return [str(script)]
    found = shutil.which("dockyard")
    return [found] if found else [sys.executable, "-m", "dockyard"]


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

    def med(argv: list[str], n: int = 7) -> float:
        return time_command("", argv, n).median * 1000

    interp = med([py, "-c", "pass"])
    cli = med([py, "-c", "import dockyard.cli.main"])
    print(f"  python start-up (python -c pass)          {interp:8.1f} ms")
    print(f"  + import dockyard.cli.main                 {cli - interp:8.1f} ms")
    # What a real `run` imports (the CLI imports per verb, lazily).
    proc = subprocess.run(
        [py, "-X", "importtime", "-m", "dockyard", "run", "--rm", "busybox", "true"],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKYARD_HOST": host},
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
    """The same rootfs tar as scripts/make-base-image builds for busybox:latest."""
    loader = importlib.machinery.SourceFileLoader(
        "make_base_image", str(REPO / "scripts" / "make-base-image")
    )
    spec = importlib.util.spec_from_loader("make_base_image", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module.busybox_layer()


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
    mounted_here = False
    v1 = (cg / "memory").is_dir() and not (cg / "cgroup.controllers").exists()
    if v1 and not os.path.ismount(target):
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


def bench_oci(runtime: str, n: int) -> Result:
    path = shutil.which(runtime)
    label = f"{runtime} run (OCI bundle)"
    if not path:
        return Result(label, error="not installed")
    guard = hugetlb_for_crun() if runtime == "crun" else contextlib.nullcontext()
    with guard, oci_bundle(path) as bundle:

        def once(i: int) -> None:
            cid = f"dkybench-{uuid.uuid4().hex[:12]}"
            subprocess.run(
                [path, "run", "--bundle", str(bundle), cid], check=True, capture_output=True
            )

        return time_each(label, once, n)


def daemon_answers(sock: str) -> bool:
    if not os.path.exists(sock):
        return False
    try:
        c = UnixHTTPConnection(sock, timeout=3)
        c.request("GET", "/_ping")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def bench_docker(n: int, dockyard_socket: str | None) -> Result:
    label = "docker run --rm busybox true"
    docker = shutil.which("docker")
    sock = "/var/run/docker.sock"
    if not docker:
        return Result(label, error="docker CLI not installed")
    real = os.path.realpath(sock)
    if dockyard_socket and real == os.path.realpath(dockyard_socket):
        return Result(label, error="/var/run/docker.sock is Dockyard's own socket")
    if not daemon_answers(sock):
        return Result(label, error="no dockerd running (not started by this script)")
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env["DOCKER_HOST"] = f"unix://{sock}"
    if (
        subprocess.run(
            [docker, "image", "inspect", "busybox"], env=env, capture_output=True
        ).returncode
        != 0
    ):
        return Result(label, error="dockerd has no busybox image (this script pulls nothing)")
    return time_command(label, [docker, "run", "--rm", "busybox", "true"], n, env)


def bench_podman(n: int) -> Result:
    label = "podman run --rm busybox true"
    podman = shutil.which("podman")
    sock = "/run/podman/podman.sock"
    if not podman:
        return Result(label, error="not installed")
    if not daemon_answers(sock):
        return Result(label, error="no podman service running (not started by this script)")
    return time_command(
        label, [podman, "--url", f"unix://{sock}", "run", "--rm", "busybox", "true"], n
    )


# -- report ------------------------------------------------------------------------


def report(dockyard: list[Result], others: list[Result]) -> None:
    print(
        f"\n{'command':<44} {'median':>9} {'p90':>9}   ratio dockyard/this (default, --network none)"
    )
    for r in dockyard + others:
        if r.error or not r.times:
            print(f"{r.label:<44} {'-':>9} {'-':>9}   ({r.error})")
            continue
        ratios = ""
        if r in others:
            rs = [f"{d.median / r.median:6.1f}x" for d in dockyard if d.times]
            ratios = "  ".join(rs)
        print(f"{r.label:<44} {r.median * 1000:7.1f}ms {r.p90 * 1000:7.1f}ms   {ratios}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="timed runs per command (after one warm-up)")
    ap.add_argument(
        "--host",
        default=os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST,
    )
    ap.add_argument("--no-reference", action="store_true", help="skip runc/crun/docker/podman")
    args = ap.parse_args()

    env = {**os.environ, "DOCKYARD_HOST": args.host}
    cli = dockyard_argv()
    print(
        f"dockyard daemon: {args.host}; {args.n} runs each after a warm-up; {os.cpu_count()} CPUs"
    )
    dockyard = [
        time_command(
            "dockyard run --rm busybox true", [*cli, "run", "--rm", "busybox", "true"], args.n, env
        ),
        time_command(
            "dockyard run --rm --network none busybox true",
            [*cli, "run", "--rm", "--network", "none", "busybox", "true"],
            args.n,
            env,
        ),
    ]
    others: list[Result] = []
    if not args.no_reference:
        if os.geteuid() != 0:
            print("(not root: runc/crun skipped)")
        else:
            others += [bench_oci("runc", args.n), bench_oci("crun", args.n)]
        dockyard_sock = args.host[len("unix://") :] if args.host.startswith("unix://") else None
        others += [bench_docker(args.n, dockyard_sock), bench_podman(args.n)]
    report(dockyard, others)
    breakdown(args.host)
    return 0 if all(not r.error for r in dockyard) else 1


if __name__ == "__main__":
    sys.exit(main())
