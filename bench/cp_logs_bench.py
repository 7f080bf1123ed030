#!/usr/bin/env python3
"""`cp` of a 100 MB tree both ways, `stats --no-stream`, and `logs` of a 100 MB log,
beside dockerd in the same interleaved rounds.

    python3 bench/cp_logs_bench.py [-n 3] [--host unix:///path/to.sock]
        [--dockerd-host unix:///run/docker-bench.sock]

Without --host it starts a private daemon on a temporary socket and data root
(busybox from scripts/make-base-image) and removes both at the end; it never
touches /run/dockyard.sock. The reference is a dockerd that ALREADY answers
(--dockerd-host, or /run/docker-bench.sock: see bench/reference_dockerd.py; this
script starts none); what it creates there is named cp-bench-<pid>-* and removed.

Each engine gets the same containers: a `sleep` one (cp, stats) and one that wrote
~100 MB of 59-byte lines (1.7M lines, the hard case for a log reader: the cost is
per line) to a json-file log kept in one file (`--log-opt max-size=200m`). Timed,
in rounds that alternate the engines (so load on the machine hits both alike),
after one warm-up round; the median and the ratio to dockerd's median:

  cp in (100 MB)        cp DIR c:/tmp/  (100 files of 1 MiB in 10 directories)
  cp out (100 MB)       cp c:/tmp/tree DIR
  stats --no-stream     one sample of one container
  logs (100 MB)         logs c > /dev/null
  logs --since (1%)     logs --since <the time of the last ~1% of lines>: the
                        window is found without reading the 99% before it
  logs --tail 100       the last lines only

Ours is the installed launcher's command (python -S, run()); theirs the docker CLI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _daemon import PrivateDaemon, bench_env  # noqa: E402 - the bench directory is not a package
from reference_engines import (  # noqa: E402
    compile_sources,
    docker_cli,
    dockyard_cli,
    find_dockerd,
    row,
)

LOG_SCRIPT = "yes 0123456789012345678901234567890123456789012345678901234567 | head -c 100000000"


def make_tree(root: Path) -> None:
    block = os.urandom(1 << 20)
    for d in range(10):
        (root / f"d{d}").mkdir(parents=True)
        for f in range(10):
            (root / f"d{d}" / f"f{f}").write_bytes(block)


class Engine:
    """One engine's CLI, containers and timed operations."""

    def __init__(self, label: str, cli: list[str], env: dict[str, str], work: Path) -> None:
        self.label, self.cli, self.env, self.work = label, cli, env, work
        self.name = f"cp-bench-{os.getpid()}-{label}"
        self.logname = self.name + "-log"
        self.since = ""

    def run(self, *args: str, stdout: int | None = subprocess.DEVNULL) -> str:
        proc = subprocess.run(
            [*self.cli, *args], env=self.env, stdout=stdout, stderr=subprocess.PIPE, check=False
        )
        if proc.returncode != 0:
            raise SystemExit(f"{self.label}: {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout.decode() if stdout == subprocess.PIPE else ""

    def setup(self) -> None:
        self.cleanup()
        self.run("run", "-d", "--name", self.name, "busybox", "sleep", "3600")
        self.run("run", "--name", self.logname, "--log-opt", "max-size=200m", "busybox",
                 "sh", "-c", LOG_SCRIPT)  # fmt: skip
        # the time of the line ~1% from the end: --since reads the last 1 MB
        tail = self.run("logs", "-t", "--tail", "17000", self.logname, stdout=subprocess.PIPE)
        self.since = tail.split(" ", 1)[0]

    def cleanup(self) -> None:
        subprocess.run([*self.cli, "rm", "-f", self.name, self.logname], env=self.env,
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(self.work / f"out-{self.label}", ignore_errors=True)

    def operations(self, tree: Path) -> dict[str, Callable[[], None]]:
        dest = self.work / f"out-{self.label}"

        def cp_out() -> None:
            shutil.rmtree(dest, ignore_errors=True)
            self.run("cp", f"{self.name}:/tmp/tree", str(dest))

        return {
            "cp in (100 MB)": lambda: self.run("cp", str(tree), f"{self.name}:/tmp/"),
            "cp out (100 MB)": cp_out,
            "stats --no-stream": lambda: self.run("stats", "--no-stream", self.name),
            "logs (100 MB)": lambda: self.run("logs", self.logname),
            "logs --since (1%)": lambda: self.run("logs", "--since", self.since, self.logname),
            "logs --tail 100": lambda: self.run("logs", "--tail", "100", self.logname),
        }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=3)
    p.add_argument("--host", default="")
    p.add_argument("--dockerd-host", default="")
    args = p.parse_args()
    compile_sources()
    base = Path(tempfile.mkdtemp(prefix="dky-bench-cp-"))
    daemon = None
    engines: list[Engine] = []
    try:
        host = args.host
        if not host:
            daemon = PrivateDaemon(base, busybox=True)
            host = daemon.host
        engines.append(Engine("dockyard", dockyard_cli(), bench_env(host), base))
        docker = docker_cli()
        dockerd, why = find_dockerd(args.dockerd_host or None, host)
        if docker is None:
            dockerd, why = None, "no docker CLI installed"
        if dockerd and docker:
            engines.append(Engine("dockerd", [docker, "-H", dockerd], bench_env(dockerd), base))
        tree = base / "tree"
        make_tree(tree)
        for engine in engines:
            engine.setup()
        ops = {e.label: e.operations(tree) for e in engines}
        times: dict[str, dict[str, list[float]]] = {e.label: {} for e in engines}
        for op in ops["dockyard"]:
            for i in range(args.n + 1):
                for engine in engines:  # alternating: both engines see the same load
                    t0 = time.perf_counter()
                    ops[engine.label][op]()
                    if i:  # the first round warms the page cache
                        times[engine.label].setdefault(op, []).append(time.perf_counter() - t0)
        load = os.getloadavg()[0]
        print(f"cp/stats/logs bench, {args.n} interleaved rounds (load average {load:.1f}):")
        print(f"  dockerd: {dockerd}" if dockerd else f"  no dockerd compared: {why}")
        for op, samples in times["dockyard"].items():
            ref = times.get("dockerd", {}).get(op)
            print(row(f"{op} dockyard", samples, ref))
            if ref:
                print(row(f"{op} dockerd", ref))
    finally:
        for engine in engines:
            engine.cleanup()
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
