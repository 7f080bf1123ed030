#!/usr/bin/env python3
"""Time `logs` of a 100 MB json-file log, beside `cat` of the same bytes.

    .venv/bin/python bench/logs_bench.py [-n 3] [--line 64] [--size 100000000]
        [--host unix:///path/to.sock]

Without --host it starts a private daemon (temporary socket and data root, busybox
from scripts/make-base-image) and stops it at the end; it never touches
/run/dockyard.sock. A container writes --size bytes of --line-byte lines (64: 1.6M
lines, the hard case: the cost is per line) to a log kept in one file
(`--log-opt max-size=1g`). Timed (median of N after a warm-up):

  cat json log        `cat` of the log file as it is on disk (JSON lines)
  cat output          `cat` of the bytes `logs` prints (what a reader must end with)
  API only            GET /containers/{id}/logs read to the end by a Python client
  dockyard logs       the whole command, output to /dev/null
  dockyard logs|cat   the whole command into a pipe
  dockyard logs -t    with timestamps
  docker logs         the docker CLI against our daemon (where installed)

The output of `dockyard logs` is checked against the bytes the container wrote.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _daemon import PrivateDaemon, bench_env


def median_of(n: int, fn: Callable[[], None]) -> float:
    times = []
    for i in range(n + 1):
        t0 = time.perf_counter()
        fn()
        if i:  # the first run warms the page cache
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def shell(cmd: str, env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(["sh", "-c", cmd], env=env, check=True)

    return run


def api_read(sock_path: str, cid: str) -> Callable[[], None]:
    def run() -> None:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock_path)
        s.sendall(
            f"GET /v1.50/containers/{cid}/logs?stdout=1&stderr=1 HTTP/1.1\r\n"
            "Host: d\r\nConnection: close\r\n\r\n".encode()
        )
        buf = bytearray(1 << 20)
        while s.recv_into(buf):
            pass
        s.close()

    return run


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=3)
    p.add_argument("--line", type=int, default=64, help="bytes per line, newline included")
    p.add_argument("--size", type=int, default=100_000_000)
    p.add_argument("--host", default="")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dky-logbench-"))
    daemon = None
    try:
        if args.host:
            host = args.host
        else:
            daemon = PrivateDaemon(base, busybox=True)
            host = daemon.host
        env = bench_env(host)
        cli = f"{sys.executable} -m dockyard"
        name = f"logbench-{os.getpid()}"
        line = ("0123456789" * (args.line // 10 + 1))[: args.line - 1]
        subprocess.run(
            [*cli.split(), "run", "--name", name, "--log-opt", "max-size=1g", "busybox",
             "sh", "-c", f"yes {line} | head -c {args.size}"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        info = subprocess.run(
            [*cli.split(), "inspect", "-f", "{{.Id}} {{.LogPath}}", name],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        cid, log_path = info[0], info[1]
        expected = base / "expected"
        with expected.open("wb") as f:
            whole, rest = divmod(args.size, args.line)
            f.write((line + "\n").encode() * whole + (line + "\n").encode()[:rest])
        got = base / "got"
        subprocess.run(f"{cli} logs {name} > {got}", shell=True, env=env, check=True)
        same = subprocess.run(["cmp", "-s", str(got), str(expected)]).returncode == 0
        got.unlink()
        rows = [
            ("cat json log", median_of(args.n, shell(f"cat {log_path} > /dev/null", env))),
            ("cat output", median_of(args.n, shell(f"cat {expected} > /dev/null", env))),
            ("cat output|cat", median_of(args.n, shell(f"cat {expected} | cat > /dev/null", env))),
        ]
        if host.startswith("unix://"):
            rows.append(("API only", median_of(args.n, api_read(host[len("unix://") :], cid))))
        rows += [
            ("dockyard logs", median_of(args.n, shell(f"{cli} logs {name} > /dev/null", env))),
            ("dockyard logs|cat", median_of(args.n, shell(f"{cli} logs {name} | cat > /dev/null", env))),
            ("dockyard logs -t", median_of(args.n, shell(f"{cli} logs -t {name} > /dev/null", env))),
        ]  # fmt: skip
        if shutil.which("docker"):
            rows.append(
                ("docker logs", median_of(args.n, shell(f"docker logs {name} > /dev/null", env)))
            )
        size = os.path.getsize(log_path)
        print(f"log: {size / 1e6:.0f} MB on disk, {args.size / 1e6:.0f} MB of output "
              f"in {args.line}-byte lines; output {'matches' if same else 'DIFFERS'}")  # fmt: skip
        ref = rows[1][1]
        for label, t in rows:
            print(f"{label:<20} {t * 1000:8.0f} ms  {t / ref:7.1f}x cat")
        subprocess.run([*cli.split(), "rm", "-f", name], env=env, capture_output=True)
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
