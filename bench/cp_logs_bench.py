#!/usr/bin/env python3
"""Time `cp` of a 100 MB tree both ways and `logs` of a 100 MB log.

    python3 bench/cp_logs_bench.py [-n 3] [--host unix:///run/dockyard.sock]
        [--dockerd-host unix:///run/docker-bench.sock]

Without --host it starts a private daemon on a temporary socket and data root
(and imports busybox with scripts/make-base-image), and removes both at the end.
The tree is 100 files of 1 MiB in 10 directories. The log is written by a
container (`--log-opt max-size=200m`, so the whole 100 MB stays in one file; the
default rotation would keep 30 MB) and read with `logs > /dev/null`. Each
operation is run once to warm up and then N times; the median is printed, with
the ratio to the docker CLI against an ALREADY running dockerd where one answers
(this script never starts dockerd).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _daemon import PrivateDaemon, bench_env


def timed(argv: list[str], env: dict[str, str], n: int, stdout=subprocess.DEVNULL) -> float:
    times = []
    for i in range(n + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdout=stdout, stderr=subprocess.PIPE, check=False)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode()}")
        if i:
            times.append(dt)
    return statistics.median(times)


def make_tree(root: Path) -> None:
    block = os.urandom(1 << 20)
    for d in range(10):
        (root / f"d{d}").mkdir(parents=True)
        for f in range(10):
            (root / f"d{d}" / f"f{f}").write_bytes(block)


def bench_engine(label: str, cli: list[str], env: dict[str, str], n: int, work: Path) -> dict:
    tree = work / "tree"
    if not tree.exists():
        make_tree(tree)
    name = f"bench-cp-{os.getpid()}-{label}"
    logname = name + "-log"
    run = subprocess.run
    run([*cli, "rm", "-f", name, logname], env=env, capture_output=True, check=False)
    run([*cli, "run", "-d", "--name", name, "busybox", "sleep", "600"], env=env, check=True,
        stdout=subprocess.DEVNULL)  # fmt: skip
    out: dict[str, float] = {}
    try:
        out["cp in (100 MB)"] = timed([*cli, "cp", str(tree), f"{name}:/tmp/"], env, n)
        dest = work / f"out-{label}"

        def cp_out() -> float:
            times = []
            for i in range(n + 1):
                shutil.rmtree(dest, ignore_errors=True)
                t0 = time.perf_counter()
                run([*cli, "cp", f"{name}:/tmp/tree", str(dest)], env=env, check=True)
                if i:
                    times.append(time.perf_counter() - t0)
            return statistics.median(times)

        out["cp out (100 MB)"] = cp_out()
        # ~100 MB of log: 1.6M lines of 63 bytes
        script = (
            "yes 0123456789012345678901234567890123456789012345678901234567 | head -c 100000000"
        )
        run([*cli, "run", "--name", logname, "--log-opt", "max-size=200m", "busybox", "sh", "-c",
             script], env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        out["logs (100 MB)"] = timed([*cli, "logs", logname], env, n)
    finally:
        run([*cli, "rm", "-f", name, logname], env=env, capture_output=True, check=False)
        shutil.rmtree(work / f"out-{label}", ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=3)
    p.add_argument("--host", default="")
    p.add_argument("--dockerd-host", default="")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dky-bench-"))
    daemon = None
    try:
        host = args.host
        if not host:
            daemon = PrivateDaemon(base, busybox=True)
            host = daemon.host
        env = bench_env(host)
        ours = bench_engine("dockyard", [sys.executable, "-m", "dockyard"], env, args.n, base)
        theirs: dict[str, float] = {}
        if args.dockerd_host and shutil.which("docker"):
            denv = dict(env, DOCKER_HOST=args.dockerd_host)
            theirs = bench_engine("dockerd", ["docker"], denv, args.n, base)
        print(f"{'operation':<18} {'dockyard':>10} {'dockerd':>10} {'ratio':>7}")
        for op, t in ours.items():
            ref = theirs.get(op)
            ratio = f"{t / ref:6.2f}x" if ref else "   n/a"
            refs = f"{ref * 1000:8.0f}ms" if ref else "       n/a"
            print(f"{op:<18} {t * 1000:8.0f}ms {refs} {ratio}")
        if not theirs:
            print("(no dockerd compared: pass --dockerd-host of an already running dockerd)")
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
