#!/usr/bin/env python3
"""`dockyard commit` against dockerd's `docker commit`, and the save after it.

    python3 bench/commit_bench.py [-n 5] [--compare-src /work/main/src] [--debian ARCHIVE]
                                  [--base DIR] [--perf]

Each engine runs a debian:bookworm container that copies /usr (~150 MB of new
files, thousands of them, hard links and symlinks) and deletes a few paths
(whiteouts), then `commit`s it, timed, every round in an order that
alternates, in two regimes, each labelled:

    clean            rounds 1..n: nothing is removed (containers and images
                     stay until every clean round is done), so the files a
                     commit creates go where nothing was just deleted
    after deletions  rounds 1..n again, each after removing a clean round's
                     container and image (~15,000 files) from the same engine:
                     on this machine's journal-less ext4 the inode allocator
                     then skips every inode freed in the last minute
                     (recently_deleted), which slows file creation ~10x for
                     both engines; that is the file system, not the engine

    save             `save -o` of the image committed in each clean round (for
                     Dockyard the first save of a committed layer also rebuilds
                     its tar, which commit does not write)

`--compare-src` adds a Dockyard daemon of another tree (e.g. main's) for A/B.
Our daemons are private (socket and data root under --base, default /tmp),
loaded with debian:bookworm from --debian or from the installed daemon's
`save` (read-only); dockerd is the one on unix:///run/docker-bench.sock (never
started here; its rows are skipped if none answers), what is made there is
named commit-bench-<pid>-* and removed. Ratios are dockerd's time / ours,
taken in the same rounds: the machine is shared, absolute times are inflated.
CPU is the daemon's with its waited-for children (dockerd applies a layer in
a child). `--perf` samples the whole machine (`perf record -a -g`) during
each commit and prints the share of samples under recently_deleted: what the
file system's artifact cost in that regime.
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
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from _fs_regimes import Sampler  # noqa: E402
from registry_bench import docker, dockerd_answers, remove_dockerd_leftovers  # noqa: E402
from unpack_bench import DOCKERD_PID, cpu_of, daemon_at  # noqa: E402

SCRIPT = "cp -a /usr /copy && rm -rf /var/lib/apt /etc/motd /usr/share/doc"
REGIMES = ("clean", "after deletions")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--compare-src", type=Path, help="another tree's src/ to A/B against")
    p.add_argument("--debian", type=Path, help="a `docker save` of debian:bookworm")
    p.add_argument("--base", type=Path, default=Path("/tmp"), help="where our daemons live")
    p.add_argument("--perf", action="store_true", help="sample recently_deleted's share")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    base = Path(tempfile.mkdtemp(prefix="dky-commit-bench-", dir=args.base))
    tag = f"commit-bench-{os.getpid()}"
    daemons = {}
    # (step, engine) -> [(wall, cpu, recently_deleted share)]
    times: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    sampler = Sampler(base) if args.perf else None
    loads = [os.getloadavg()[0]]
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
        engines: dict[str, Callable[..., object]] = {name: d.run for name, d in daemons.items()}
        pids: dict[str, int | None] = {name: d.proc.pid for name, d in daemons.items()}
        if dockerd_answers():
            engines["dockerd"] = lambda *a: docker(*a)
            pids["dockerd"] = int(DOCKERD_PID.read_text()) if DOCKERD_PID.exists() else None

        def timed(step: str, engine: str, *a: str) -> None:
            if sampler:
                sampler.start()
            cpu0 = cpu_of(pids[engine])
            start = time.perf_counter()
            engines[engine](*a)
            wall = time.perf_counter() - start
            cpu = cpu_of(pids[engine]) - cpu0
            share = sampler.stop() if sampler else 0.0
            times.setdefault((step, engine), []).append((wall, cpu, share))

        def name_of(regime: str, rnd: int, engine: str) -> str:
            return f"{tag}-{regime[0]}{rnd}-{engine.split()[0]}{len(engine)}"

        def remove(engine: str, name: str) -> None:
            engines[engine]("rm", name)
            engines[engine]("rmi", f"{name}:c")

        for regime in REGIMES:
            for rnd in range(args.n):
                order = list(engines)
                if rnd % 2:
                    order.reverse()
                for engine in order:
                    run = engines[engine]
                    name = name_of(regime, rnd, engine)
                    run("run", "--name", name, "--network", "none", "debian:bookworm",
                        "sh", "-c", SCRIPT)  # fmt: skip
                    if regime == "after deletions":
                        remove(engine, name_of("clean", rnd, engine))
                        if rnd:
                            remove(engine, name_of(regime, rnd - 1, engine))
                    subprocess.run(["sync"], check=True)
                    timed(f"commit ({regime})", engine, "commit", name, f"{name}:c")
                    if regime == "clean":
                        out = base / "saved.tar"
                        timed("save", engine, "save", "-o", str(out), f"{name}:c")
                        out.unlink()
            loads.append(os.getloadavg()[0])
        for engine in engines:
            remove(engine, name_of("after deletions", args.n - 1, engine))
    finally:
        if dockerd_answers():
            remove_dockerd_leftovers(tag)
        for daemon in daemons.values():
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"medians of {args.n} interleaved rounds per regime; ratio: dockerd's time / this "
        f"row's (same rounds); load average {' -> '.join(f'{x:.1f}' for x in loads)}"
    )
    perf_col = "  recently_deleted" if sampler else ""
    print(f"{'step':26s} {'engine':17s} {'wall':>7s} {'CPU':>7s}  ratio{perf_col}")
    for step in (*(f"commit ({r})" for r in REGIMES), "save"):
        theirs = times.get((step, "dockerd"))
        for engine in engines:
            values = times.get((step, engine))
            if not values:
                continue
            wall = statistics.median(v[0] for v in values)
            cpu = statistics.median(v[1] for v in values)
            ratio = (
                f"{statistics.median(v[0] for v in theirs) / wall:5.2f} x dockerd"
                if theirs
                else " " * 15
            )
            share = f"  {statistics.median(v[2] for v in values):5.1f}%" if sampler else ""
            print(f"{step:26s} {engine:17s} {wall:6.2f}s {cpu:6.2f}s  {ratio}{share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
