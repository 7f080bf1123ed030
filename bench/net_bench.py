#!/usr/bin/env python3
"""What networking costs: `run --rm` on the default bridge vs `--network none`,
and a published port's request/response round trip and throughput over loopback.

    python3 bench/net_bench.py [-n 20] [--host unix:///run/dockyard.sock]
        [--dockerd-host unix:///var/run/docker.sock]

Rows:
    dockyard run --rm busybox true                   (CLI, default bridge)
    dockyard run --rm --network none busybox true    (CLI, loopback only)
    API create+start+wait+delete, bridge / none      (no CLI start-up in the noise)
    round trip through 127.0.0.1:<published port>   (kernel DNAT, no proxy)
    round trip to the container's address directly  (the floor: no NAT at all)
    throughput through the published port            (256 MiB, one connection)
and the same through dockerd where one already runs (this script starts no
daemon and pulls nothing; dockerd publishes 127.0.0.1 through docker-proxy).
Traffic goes only to 127.0.0.1 and to the benchmark's own containers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RR_COUNT = 3000
BULK = 256 * 1024 * 1024


class Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path_ = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path_)


def api(sock: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = Unix(sock)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data.strip() else None)
    finally:
        conn.close()


def median_ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1e3:8.2f} ms" if times else "       -"


def cli_runs(host: str, n: int) -> dict[str, list[float]]:
    dockyard = shutil.which("dockyard") or ""
    argv = [dockyard] if dockyard else [sys.executable, "-m", "dockyard"]
    env = dict(os.environ, DOCKYARD_HOST=host, PYTHONPATH=str(REPO / "src"))
    rows = {"bridge": [], "none": []}  # type: dict[str, list[float]]
    for i in range(n + 1):
        for mode in rows:  # interleaved: load hits both alike
            extra = [] if mode == "bridge" else ["--network", "none"]
            t0 = time.perf_counter()
            proc = subprocess.run(
                [*argv, "run", "--rm", *extra, "busybox", "true"], env=env, capture_output=True
            )
            if proc.returncode != 0:
                raise SystemExit(f"dockyard run failed: {proc.stderr.decode()}")
            if i:
                rows[mode].append(time.perf_counter() - t0)
    return rows


def api_runs(sock: str, n: int) -> dict[str, list[float]]:
    rows = {"bridge": [], "none": []}  # type: dict[str, list[float]]
    for i in range(n + 1):
        for mode in rows:
            t0 = time.perf_counter()
            body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": mode}}
            status, created = api(sock, "POST", "/containers/create", body)
            assert status == 201, created
            cid = created["Id"]
            assert api(sock, "POST", f"/containers/{cid}/start")[0] == 204
            api(sock, "POST", f"/containers/{cid}/wait")
            api(sock, "DELETE", f"/containers/{cid}")
            if i:
                rows[mode].append(time.perf_counter() - t0)
    return rows


def wait_port(host: str, port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.sendall(b"x")
                if s.recv(1) == b"x":
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing answers on {host}:{port}")
        time.sleep(0.1)


def round_trips(host: str, port: int, count: int = RR_COUNT) -> list[float]:
    times = []
    with socket.create_connection((host, port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = b"p" * 64
        for _ in range(count):
            t0 = time.perf_counter()
            s.sendall(msg)
            got = 0
            while got < len(msg):
                got += len(s.recv(4096))
            times.append(time.perf_counter() - t0)
    return times


def throughput(host: str, port: int) -> float:
    """MiB/s of BULK bytes into a container that discards them."""
    chunk = b"\0" * (1 << 20)
    with socket.create_connection((host, port), timeout=30) as s:
        t0 = time.perf_counter()
        for _ in range(BULK // len(chunk)):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # EOF once the server has read everything
        return BULK / (1 << 20) / (time.perf_counter() - t0)


def published_port_rows(sock: str, label: str) -> None:
    body = {
        "Image": "busybox",
        "Cmd": ["sh", "-c", "nc -ll -p 9 -e dd of=/dev/null bs=1M & exec nc -ll -p 7 -e cat"],
        "ExposedPorts": {"7/tcp": {}, "9/tcp": {}},
        "HostConfig": {
            "PortBindings": {
                "7/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
                "9/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
            }
        },
    }
    status, created = api(sock, "POST", "/containers/create", body)
    assert status == 201, created
    cid = created["Id"]
    try:
        assert api(sock, "POST", f"/containers/{cid}/start")[0] == 204
        info = api(sock, "GET", f"/containers/{cid}/json")[1]["NetworkSettings"]
        rr_port = int(info["Ports"]["7/tcp"][0]["HostPort"])
        bulk_port = int(info["Ports"]["9/tcp"][0]["HostPort"])
        ip = info["IPAddress"]
        wait_port("127.0.0.1", rr_port)
        round_trips("127.0.0.1", rr_port, 300)  # warm-up: caches, conntrack, frequencies
        via: list[float] = []
        direct: list[float] = []
        for _ in range(3):  # interleaved, so background load hits both alike
            via += round_trips("127.0.0.1", rr_port, RR_COUNT // 3)
            if ip:
                direct += round_trips(ip, 7, RR_COUNT // 3)
        mib = throughput("127.0.0.1", bulk_port)
        print(
            f"{label} round trip via 127.0.0.1:{rr_port:<6} {statistics.median(via) * 1e6:8.1f} us"
            f"  (p90 {sorted(via)[int(len(via) * 0.9)] * 1e6:.1f} us, {len(via)} round trips)"
        )
        if direct:
            print(
                f"{label} round trip to {ip}:7 directly  {statistics.median(direct) * 1e6:8.1f} us"
            )
        print(f"{label} throughput via the published port  {mib:8.0f} MiB/s")
    finally:
        api(sock, "DELETE", f"/containers/{cid}?force=1")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--host", default=os.environ.get("DOCKYARD_HOST", "unix:///run/dockyard.sock"))
    ap.add_argument("--dockerd-host", default="unix:///var/run/docker.sock")
    args = ap.parse_args()
    sock = args.host.removeprefix("unix://")
    print(f"dockyard daemon: {args.host}; {args.n} runs each after a warm-up, interleaved")
    cli = cli_runs(args.host, args.n)
    print(f"dockyard run --rm busybox true                 {median_ms(cli['bridge'])}")
    print(f"dockyard run --rm --network none busybox true  {median_ms(cli['none'])}")
    cost = statistics.median(cli["bridge"]) - statistics.median(cli["none"])
    print(f"  the default bridge costs (CLI)               {cost * 1e3:8.2f} ms")
    rows = api_runs(sock, args.n)
    print(f"API create+start+wait+delete, bridge           {median_ms(rows['bridge'])}")
    print(f"API create+start+wait+delete, none             {median_ms(rows['none'])}")
    cost = statistics.median(rows["bridge"]) - statistics.median(rows["none"])
    print(f"  the default bridge costs (API)               {cost * 1e3:8.2f} ms")
    published_port_rows(sock, "dockyard")
    dockerd = args.dockerd_host.removeprefix("unix://")
    try:
        status, _ = api(dockerd, "GET", "/_ping")
    except OSError:
        status = 0
    if status == 200:
        published_port_rows(dockerd, "dockerd ")
    else:
        print(f"dockerd: nothing answers on {args.dockerd_host} (this script starts no dockerd)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
