#!/usr/bin/env python3
"""What a user-defined network costs: container start and embedded DNS.

    python3 bench/network_bench.py [--host unix:///run/dockyard.sock] [-n 20]

Against a running Dockyard daemon (never starts one, never pulls; needs the
busybox image and root, to enter a container's network namespace):

- POST /containers/{id}/start latency with --network none, the default bridge
  and a user-defined network (interleaved rounds, so load hits all alike);
- the embedded DNS server's round trip: A queries for a container's name sent
  to 127.0.0.11 from inside another container's namespace (this process enters
  it on a thread of its own), median and p90 in microseconds.

Traffic goes only to the containers this script starts. Everything it creates
is removed at the end.
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import json
import os
import socket
import statistics
import struct
import threading
import time
import uuid

CLONE_NEWNET = 0x40000000


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api(path: str, method: str, url: str, body: object = None) -> tuple[int, bytes]:
    conn = UnixConnection(path)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, url, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def query(name: str, qid: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\x00"
        + struct.pack("!HH", 1, 1)
    )


def dns_round_trips(netns: str, name: str, count: int) -> list[float]:
    """On a thread that enters `netns` (setns is per thread) and ends after."""
    out: list[float] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(netns, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.connect(("127.0.0.11", 53))
            for i in range(count):
                t = time.perf_counter()
                s.send(query(name, i & 0xFFFF))
                reply = s.recv(512)
                out.append((time.perf_counter() - t) * 1e6)
                if struct.unpack("!H", reply[6:8])[0] < 1:
                    raise RuntimeError(f"no answer for {name}")
            s.close()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            failure.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    if failure:
        raise failure[0]
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default=os.environ.get("DOCKYARD_HOST", "unix:///run/dockyard.sock"))
    p.add_argument("-n", type=int, default=20)
    p.add_argument(
        "--skip-bridge",
        action="store_true",
        help="leave the default bridge out (its spare namespaces are made between rounds)",
    )
    args = p.parse_args()
    sock = args.host.removeprefix("unix://")
    net = f"bench-{uuid.uuid4().hex[:8]}"
    status, body = api(sock, "POST", "/networks/create", {"Name": net})
    if status != 201:
        raise SystemExit(f"network create: {status} {body.decode()}")
    made: list[str] = []
    try:

        def create(mode: str, cmd: list[str], name: str = "") -> str:
            url = "/containers/create" + (f"?name={name}" if name else "")
            status, body = api(
                sock,
                "POST",
                url,
                {"Image": "busybox", "Cmd": cmd, "HostConfig": {"NetworkMode": mode}},
            )
            if status != 201:
                raise SystemExit(f"create: {status} {body.decode()}")
            cid = json.loads(body)["Id"]
            made.append(cid)
            return cid

        modes = {"none": "none", "bridge": "bridge", "user-defined": net}
        if args.skip_bridge:
            del modes["bridge"]
        times: dict[str, list[float]] = {k: [] for k in modes}
        for _ in range(args.n + 1):  # the first round warms up
            for label, mode in modes.items():
                cid = create(mode, ["true"])
                t = time.perf_counter()
                status, body = api(sock, "POST", f"/containers/{cid}/start")
                elapsed = (time.perf_counter() - t) * 1000
                if status != 204:
                    raise SystemExit(f"start ({label}): {status} {body.decode()}")
                api(sock, "POST", f"/containers/{cid}/wait")
                api(sock, "DELETE", f"/containers/{cid}?force=1")
                made.remove(cid)
                times[label].append(elapsed)
        print(f"POST /containers/{{id}}/start, {args.n} rounds (ms):")
        base = statistics.median(times["none"][1:])
        for label, values in times.items():
            med = statistics.median(values[1:])
            print(
                f"  {label:13s} median {med:6.1f}  min {min(values[1:]):6.1f}  (+{med - base:.1f} over none)"
            )

        peer = f"peer-{uuid.uuid4().hex[:6]}"
        for cid in (create(net, ["sleep", "300"], peer), create(net, ["sleep", "300"])):
            api(sock, "POST", f"/containers/{cid}/start")
        asker = made[-1]
        info = json.loads(api(sock, "GET", f"/containers/{asker}/json")[1])
        sandbox = (
            info["NetworkSettings"].get("SandboxKey") or f"/proc/{info['State']['Pid']}/ns/net"
        )
        rtts = dns_round_trips(sandbox, peer, 500)
        rtts.sort()
        print(
            f"embedded DNS, A {peer} from a container on the same network (500 queries): "
            f"median {statistics.median(rtts):.0f} us, p90 {rtts[int(len(rtts) * 0.9)]:.0f} us"
        )
    finally:
        for cid in made:
            api(sock, "DELETE", f"/containers/{cid}?force=1")
        api(sock, "DELETE", f"/networks/{net}")


if __name__ == "__main__":
    main()
