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

Where a data root lies on the disk decides much of the second regime, so it
is printed for every engine, with the share of each after-deletions commit's
new inodes that land in block groups the round's removals had just freed
(each engine's own removals, measured alike: what recently_deleted scans).
Our data roots are made in a new directory under --base, default "/": ext4
spreads a new top-level directory to a roomy region of the disk, as dockerd's
data root (made long ago) lies in one. Under /tmp ours shares block groups
that every test suite here fills and empties; while they run, whatever the
engine, a new tree there can only take inodes just freed (`--base /tmp`: the
regime then measures the neighbourhood as much as the engine).

`--compare-src` adds a Dockyard daemon of another tree (e.g. main's) for A/B.
Our daemons are private (socket and data root under --base),
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
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from _fs_regimes import InodeGroups, Sampler  # noqa: E402
from reference_dockerd import DATA_ROOT as DOCKERD_ROOT  # noqa: E402
from registry_bench import docker, dockerd_answers, remove_dockerd_leftovers  # noqa: E402
from unpack_bench import DOCKERD_PID, cpu_of, daemon_at  # noqa: E402

SCRIPT = "cp -a /usr /copy && rm -rf /var/lib/apt /etc/motd /usr/share/doc"
REGIMES = ("clean", "after deletions")


def where(path: Path) -> str:
    """`path` and the block group of its directory inode (where ext4 starts
    looking when it places what is made under it)."""
    groups = InodeGroups(path)
    if not groups.per_group:
        return str(path)
    return f"{path} (group {(path.stat().st_ino - 1) // groups.per_group})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--compare-src", type=Path, help="another tree's src/ to A/B against")
    p.add_argument("--debian", type=Path, help="a `docker save` of debian:bookworm")
    p.add_argument(
        "--base", type=Path, default=Path("/"), help="where our daemons' directories are made"
    )
    p.add_argument("--perf", action="store_true", help="sample recently_deleted's share")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    base = Path(tempfile.mkdtemp(prefix="dky-commit-bench-", dir=args.base))
    # One directory per daemon, each placed by ext4 on its own: A/B daemons in one
    # would make their trees where the other's removals just freed inodes.
    homes: list[Path] = []

    def home(name: str) -> Path:
        homes.append(Path(tempfile.mkdtemp(prefix=f"dky-commit-bench-{name}-", dir=args.base)))
        return homes[-1] / "daemon"

    roots: list[str] = []
    tag = f"commit-bench-{os.getpid()}"
    daemons = {}
    # (step, engine) -> [(wall, cpu, recently_deleted share)]
    times: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    # engine -> [% of an after-deletions commit's inodes in groups removals freed]
    reused: dict[str, list[float]] = {}
    freed: Counter[int] = Counter()  # groups where this regime's removals (any engine's) freed
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
        daemons["dockyard"] = daemon_at(home("this"), REPO / "src")
        if args.compare_src:
            daemons["dockyard (other)"] = daemon_at(home("other"), args.compare_src)
        for daemon in daemons.values():
            daemon.cli("load", "-q", "-i", str(archive))
        engines: dict[str, Callable[..., object]] = {name: d.run for name, d in daemons.items()}
        roots = [f"{name} {where(d.base / 'root')}" for name, d in daemons.items()]
        pids: dict[str, int | None] = {name: d.proc.pid for name, d in daemons.items()}
        if dockerd_answers():
            engines["dockerd"] = lambda *a: docker(*a)
            pids["dockerd"] = int(DOCKERD_PID.read_text()) if DOCKERD_PID.exists() else None
            roots.append(f"dockerd {where(DOCKERD_ROOT)}")

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

        def tree_of(engine: str, *ref: str) -> str:
            # The container's upper dir, or an image's top layer dir: each engine's own.
            out = engines[engine](*ref[:-1], "inspect", "-f", "{{json .GraphDriver.Data}}", ref[-1])
            return json.loads(out.stdout)["UpperDir"]  # type: ignore[attr-defined]

        def inodes_of(*trees: str) -> Counter[int]:
            return InodeGroups(Path(trees[0])).of(*trees)

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
                        olds = [name_of("clean", rnd, engine)]
                        if rnd:
                            olds.append(name_of(regime, rnd - 1, engine))
                        for old in olds:
                            freed += inodes_of(
                                tree_of(engine, old), tree_of(engine, "image", f"{old}:c")
                            )
                            remove(engine, old)
                    subprocess.run(["sync"], check=True)
                    timed(f"commit ({regime})", engine, "commit", name, f"{name}:c")
                    if regime == "after deletions":
                        made = inodes_of(tree_of(engine, "image", f"{name}:c"))
                        reused.setdefault(engine, []).append(InodeGroups.reused(made, freed))
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
        for path in (base, *homes):
            shutil.rmtree(path, ignore_errors=True)
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
    if reused:
        print(
            "after deletions, the median share of a commit's new inodes in block groups "
            "where the regime's removals (any engine's) had freed inodes, what "
            "recently_deleted scans: "
            + ", ".join(f"{e} {statistics.median(v):.0f}%" for e, v in reused.items())
        )
    clean = [
        e for e in engines if sampler and statistics.median(
            v[2] for v in times[("commit (clean)", e)]) > 5
    ]  # fmt: skip
    if clean:
        print(
            f"WARNING: the clean regime met recent deletions for {', '.join(clean)} "
            "(recently_deleted > 5%: another process, or an earlier run that emptied the "
            "region ext4 chose for a data root less than ~6 minutes ago): not clean"
        )
    print("data roots (block group of the directory): " + ", ".join(roots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
