#!/usr/bin/env python3
"""`dockyard commit` against dockerd's `docker commit`, and the save after it.

    python3 bench/commit_bench.py [-n 5] [--compare-src /work/main/src] [--debian ARCHIVE]

Each engine runs a debian:bookworm container that copies /usr (~80 MB of new
files, thousands of them, hard links and symlinks) and deletes a few paths
(whiteouts), then, timed, every round in an order that alternates:

    commit   `commit NAME` of that container (its upper dir becomes a layer)
    save     `save -o` of the committed image (for Dockyard the first save of
             a committed layer also rebuilds its tar, which commit no longer writes)

`--compare-src` adds a Dockyard daemon of another tree (e.g. main's) for
A/B. Our daemons are private (socket and data root under /tmp), loaded with
debian:bookworm from --debian or from the installed daemon's `save`
(read-only); dockerd is the one on unix:///run/docker-bench.sock (never
started here; its rows are skipped if none answers), what is made there is
named commit-bench-<pid>-* and removed. Ratios are dockerd's time / ours,
taken in the same rounds: the machine is shared, absolute times are inflated.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from registry_bench import docker, dockerd_answers  # noqa: E402
from unpack_bench import daemon_at  # noqa: E402

SCRIPT = "cp -a /usr /copy && rm -rf /var/lib/apt /etc/motd /usr/share/doc"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--compare-src", type=Path, help="another tree's src/ to A/B against")
    p.add_argument("--debian", type=Path, help="a `docker save` of debian:bookworm")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    base = Path(tempfile.mkdtemp(prefix="dky-commit-bench-", dir="/tmp"))
    tag = f"commit-bench-{os.getpid()}"
    daemons = {}
    times: dict[tuple[str, str], list[float]] = {}
    try:
        archive = args.debian
        if archive is None:
            archive = base / "debian.tar"
            subprocess.run(
                [sys.executable, "-m", "dockyard", "-H", "unix:///run/dockyard.sock",
                 "save", "-o", str(archive), "debian:bookworm"],
                env=dict(os.environ, PYTHONPATH=str(REPO / "src")), check=True,
            )  # fmt: skip
        daemons["dockyard"] = daemon_at(base / "this", REPO / "src")
        if args.compare_src:
            daemons["dockyard (other)"] = daemon_at(base / "other", args.compare_src)
        for daemon in daemons.values():
            daemon.cli("load", "-q", "-i", str(archive))
        engines = {name: d.run for name, d in daemons.items()}
        if dockerd_answers():
            engines["dockerd"] = lambda *a: docker(*a)

        def timed(step: str, engine: str, *a: str) -> None:
            start = time.perf_counter()
            engines[engine](*a)
            times.setdefault((step, engine), []).append(time.perf_counter() - start)

        for rnd in range(args.n):
            order = list(engines)
            if rnd % 2:
                order.reverse()
            for engine in order:
                run = engines[engine]
                name = f"{tag}-{rnd}-{engine.split()[0]}{len(engine)}"
                run("run", "--name", name, "--network", "none", "debian:bookworm",
                    "sh", "-c", SCRIPT)  # fmt: skip
                subprocess.run(["sync"], check=True)
                timed("commit", engine, "commit", name, f"{name}:c")
                out = base / "saved.tar"
                timed("save", engine, "save", "-o", str(out), f"{name}:c")
                out.unlink()
                run("rm", name)
                run("rmi", f"{name}:c")
    finally:
        if dockerd_answers():
            names = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False)
            mine = [n for n in names.stdout.split() if tag in n]
            if mine:
                docker("rmi", "-f", *mine, check=False)
            cont = docker("ps", "-aq", "--filter", f"name={tag}", check=False).stdout.split()
            if cont:
                docker("rm", "-f", *cont, check=False)
        for daemon in daemons.values():
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"medians of {args.n} interleaved rounds; ratio: dockerd's time / this row's")
    for step in ("commit", "save"):
        theirs = times.get((step, "dockerd"))
        for engine in engines:
            values = times.get((step, engine))
            if not values:
                continue
            med = statistics.median(values)
            ratio = f"{statistics.median(theirs) / med:6.2f} x dockerd" if theirs else ""
            print(f"{step:7s} {engine:17s} {med:6.2f} s  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
