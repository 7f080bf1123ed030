#!/usr/bin/env python3
"""`dockyard load` of a saved image against `tar -x` of its layers and `docker load`.

    dockyard save debian:bookworm > /tmp/debian.tar
    python3 bench/unpack_bench.py /tmp/debian.tar [-n 5] [--compare-src /work/main/src]
        [--dir /var/lib] [--regime clean|after-deletions|both]

The layers of the archive get one small file more (so that their diff_ids
are new to any engine: a layer an engine already has is not unpacked
again), then every round runs, interleaved, on the same machine state:

    load          dockyard load -i archive.tar on a daemon of this tree (private
                  socket and data root under --dir)
    load (NAME)   the same on a daemon of each --compare-src (e.g. main's tree), for
                  A/B; NAME is the name of the directory that holds that src/
    tar -x        tar -xf of the layer tars into an empty directory
    tar -x + sync the same followed by sync (a load syncs before a layer appears)
    docker load   `docker load -i` on the dockerd at --docker-host, under a tag
                  unique to this bench (a row only where that dockerd answers;
                  this script never starts one)

in two regimes, each reported on its own:

    clean            each round loads an image of its own (new layers) and untars
                     into a new directory; nothing is deleted until all rounds
                     are done
    after deletions  the same image every round, removed (rmi, rm -r) after
                     each: what a user who loads, removes and loads again sees

They differ because of the file system, not of the engines: on ext4
without a journal (this machine's root) the inode allocator skips every
inode freed in the last minute(s) (`recently_deleted`, one buffer lookup
each), so creating thousands of files right after thousands were deleted
nearby is several times slower, for tar as for the engines.

It prints medians in MB/s of uncompressed layer bytes, each row's ratios to
`tar -x`, `tar -x + sync` and `docker load` measured in the same rounds, the
CPU time each step cost (the CLI and the daemon, with the daemon's children:
dockerd applies layers in a child; for tar, tar's), and each daemon's peak
memory (VmHWM). The machine may be loaded: wall times then swing by 50%
from round to round while CPU times hold, so compare the CPU column and the
ratios of the same rounds.

    python3 bench/unpack_bench.py --memory 5

streams a generated 5 GB layer (64 MiB and 300 kB files, made on the fly:
no input file) through the unpacker with its diff_id hashed, small files
on the worker threads and the tar child of image/tar_assist (as the store
unpacks), into a directory under /tmp (check `df`: it writes the 5 GB), and
prints the peak memory of the process that did it and of its tar child.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from image_bench import Daemon, make_archive  # noqa: E402

DOCKERD_PID = Path("/run/docker-bench.pid")


def cpu_of(pid: int | None) -> float:
    """CPU seconds of a process and its waited-for children (utime stime cutime cstime)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measured(step, pid: int | None) -> tuple[float, float]:
    """(wall, CPU of the commands run and of the daemon `pid`) of `step()`."""
    cpu0 = cpu_of(pid) + children_cpu()
    start = time.perf_counter()
    step()
    wall = time.perf_counter() - start
    return wall, cpu_of(pid) + children_cpu() - cpu0


DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"


def layers_of(archive: Path) -> list[bytes]:
    """The layer tars of a docker save archive (either layout), in manifest order."""
    import json

    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        out = []
        for name in manifest[0]["Layers"]:
            f = tar.extractfile(name)
            assert f is not None, name
            out.append(f.read())
    return out


def with_marker(layer: bytes, token: str) -> bytes:
    """`layer` with one more regular file before its end-of-archive blocks."""
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        end = 0
        for m in tar:
            end = m.offset_data + (-(-m.size // 512) * 512 if m.isreg() else 0)
    data = token.encode()
    info = tarfile.TarInfo(".unpack-bench")
    info.size, info.mode = len(data), 0o644
    out = layer[:end] + info.tobuf(tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % 512)
    out += b"\0" * 1024
    return out + b"\0" * (-len(out) % 10240)


class DockerRef:
    def __init__(self, host: str) -> None:
        self.host = host

    def answers(self) -> bool:
        return (
            shutil.which(DOCKER) is not None
            and subprocess.run([DOCKER, "-H", self.host, "version"], capture_output=True).returncode
            == 0
        )

    def run(self, *args: str) -> float:
        start = time.perf_counter()
        proc = subprocess.run([DOCKER, "-H", self.host, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"docker {' '.join(args)} failed: {proc.stderr}")
        return time.perf_counter() - start


def daemon_at(base: Path, src: Path) -> Daemon:
    base.mkdir()
    # The daemon's environment (_daemon.bench_env) puts this repo's src on
    # PYTHONPATH; point it elsewhere.
    import _daemon

    saved = _daemon.REPO
    _daemon.REPO = src.parent
    try:
        return Daemon(base)
    finally:
        _daemon.REPO = saved


MEMORY_SCRIPT = r"""
import os, resource, sys, tarfile, time
from dockyard.image.digesting import LayerDigest
from dockyard.image.tarsafe import unpack_layer

def parts(total):
    chunk = bytes(range(256)) * 4096  # 1 MiB
    sent, i = 0, 0
    while sent < total:
        size = (64 << 20) if i % 8 == 0 else 300_000
        if i < 50:
            d = tarfile.TarInfo(f"d{i}")
            d.type, d.mode = tarfile.DIRTYPE, 0o755
            yield d.tobuf(tarfile.PAX_FORMAT)
        info = tarfile.TarInfo(f"d{i % 50}/f{i}")
        info.size = size
        yield info.tobuf(tarfile.PAX_FORMAT)
        left = size
        while left:
            yield chunk[: min(left, len(chunk))]
            left -= min(left, len(chunk))
        yield b"\0" * (-size % 512)
        sent, i = sent + size, i + 1
    yield b"\0" * 1024

class Layer:
    def __init__(self, total):
        self.parts, self.buf = parts(total), b""
    def read(self, n=-1):
        while len(self.buf) < n:
            try:
                self.buf += next(self.parts)
            except StopIteration:
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

start = time.perf_counter()
digest = LayerDigest(None)
unpack_layer(Layer(int(sys.argv[2])), sys.argv[1], on_read=digest, workers=2, tar_assist=True)
took = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
tar = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{digest.count / 1e9:.2f} GB layer streamed in {took:.0f} s, peak memory {peak:.0f} MB"
      f" (the tar child's: {tar:.0f} MB)")
"""


def memory(gb: float) -> int:
    base = Path(tempfile.mkdtemp(prefix="dky-unpack-mem-", dir="/tmp"))
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        total = str(int(gb * 1e9))
        return subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, str(base / "d"), total], env=env
        ).returncode
    finally:
        shutil.rmtree(base, ignore_errors=True)


class Rows:
    """Wall and CPU times per row, in the order rows were first met."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.cpus: dict[str, list[float]] = {}

    def record(self, row: str, wall_cpu: tuple[float, float]) -> None:
        self.times.setdefault(row, []).append(wall_cpu[0])
        self.cpus.setdefault(row, []).append(wall_cpu[1])

    def report(self, title: str, size_mb: float) -> None:
        """Medians, with each row's ratios to tar -x, tar -x + sync and docker load
        taken from the same rounds (> 1: faster than that reference)."""
        med = {row: statistics.median(ts) for row, ts in self.times.items()}
        cpu = {row: statistics.median(cs) for row, cs in self.cpus.items()}
        refs = [r for r in ("tar -x", "tar -x + sync", "docker load") if r in med]
        rounds = len(next(iter(self.times.values())))
        print(f"\n{title}: {size_mb:.0f} MB of layers, {rounds} rounds, medians")
        print("  ratios: the reference's time / the row's (> 1: the row is faster)")
        for row in med:
            ratios = "  ".join(f"{med[ref] / med[row]:.2f} x {ref}" for ref in refs if ref != row)
            cpu_ratio = f" ({cpu['tar -x'] / cpu[row]:.2f} x tar -x)" if cpu[row] else ""
            print(
                f"  {row:18s} {size_mb / med[row]:6.0f} MB/s {med[row]:5.2f} s  {ratios}"
                f"  | CPU {cpu[row]:.2f} s{cpu_ratio}"
            )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archive", type=Path, nargs="?", help="a docker save archive")
    p.add_argument("--memory", type=float, metavar="GB", help="stream a generated layer of GB")
    p.add_argument("-n", type=int, default=5)
    p.add_argument(
        "--compare-src",
        type=Path,
        action="append",
        default=[],
        help="another tree's src/ to A/B against (repeatable)",
    )
    p.add_argument("--docker-host", default="unix:///run/docker-bench.sock")
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("/var/lib"),
        help="where the bench's data roots and tar -x directories go (default /var/lib:"
        " away from /tmp, where test suites delete thousands of files)",
    )
    p.add_argument(
        "--regime",
        choices=("clean", "after-deletions", "both"),
        default="both",
        help="which regime(s) to measure (see the module's doc)",
    )
    args = p.parse_args()
    if args.memory:
        return memory(args.memory)
    if args.archive is None:
        p.error("an archive to load (or --memory GB)")
    if os.geteuid() != 0:
        raise SystemExit("needs root (the daemon unpacks layers with their owners)")
    base = Path(tempfile.mkdtemp(prefix="dky-unpack-bench-", dir=args.dir))
    docker = DockerRef(args.docker_host)
    has_docker = docker.answers()
    daemons: dict[str, Daemon] = {}
    docker_tags: list[str] = []
    try:
        originals = layers_of(args.archive)
        size_mb = sum(len(layer) for layer in originals) / 1e6

        def archive_for(name: str, tag: str) -> tuple[Path, list[Path]]:
            """An archive whose layers are new to every engine (one marker file more,
            unique to `name`), and its layer tars for tar -x."""
            layers = [
                with_marker(layer, f"{os.getpid()}-{name}-{i}") for i, layer in enumerate(originals)
            ]
            archive = base / f"{name}.tar"
            archive.write_bytes(make_archive(layers, tag))
            paths = []
            for i, layer in enumerate(layers):
                paths.append(base / f"{name}-l{i}.tar")
                paths[-1].write_bytes(layer)
            return archive, paths

        daemons["load"] = daemon_at(base / "this", REPO / "src")
        for i, src in enumerate(args.compare_src):
            name = src.resolve().parent.name
            daemons[f"load ({name})"] = daemon_at(base / f"other{i}", src)
        dockerd = int(DOCKERD_PID.read_text()) if has_docker and DOCKERD_PID.exists() else None

        def untar(paths: list[Path], dest: Path) -> None:
            for path in paths:
                subprocess.run(["tar", "-xf", str(path), "-C", str(dest)], check=True)

        def round_of(
            rows: Rows, archive: Path, paths: list[Path], tag: str, dest: Path, turn: int
        ) -> None:
            """One round: every daemon's load, tar -x (+ sync), docker load, in an order
            rotated by `turn` (what runs first after deletions pays the most)."""

            def load(row: str, daemon: Daemon) -> None:
                rows.record(
                    row,
                    measured(lambda: daemon.cli("load", "-i", str(archive)), daemon.proc.pid),
                )

            def tar() -> None:
                dest.mkdir()
                wall, cpu = measured(lambda: untar(paths, dest), None)
                rows.record("tar -x", (wall, cpu))
                synced, _ = measured(lambda: subprocess.run(["sync"], check=True), None)
                rows.record("tar -x + sync", (wall + synced, cpu))

            def docker_load() -> None:
                docker_tags.append(tag)
                rows.record(
                    "docker load",
                    measured(lambda: docker.run("load", "-q", "-i", str(archive)), dockerd),
                )

            steps = [lambda r=row, d=daemon: load(r, d) for row, daemon in daemons.items()]
            steps.append(tar)
            if has_docker:
                steps.append(docker_load)
            turn %= len(steps)
            for step in steps[turn:] + steps[:turn]:
                subprocess.run(["sync"], check=True)
                step()

        prefix = f"unpack-bench-{os.getpid()}"
        if args.regime in ("clean", "both"):
            # Every round into new places: a new image (new layers) per round, tar -x
            # into a new directory; what the rounds made is deleted after all of them.
            made = [archive_for(f"clean{i}", f"{prefix}:clean{i}") for i in range(args.n)]
            clean = Rows()
            for i, (archive, paths) in enumerate(made):
                round_of(clean, archive, paths, f"{prefix}:clean{i}", base / f"x-clean{i}", i)
            clean.report("clean (no deletions between rounds)", size_mb)
            for i in range(args.n):
                for daemon in daemons.values():
                    daemon.cli("rmi", f"{prefix}:clean{i}")
                shutil.rmtree(base / f"x-clean{i}")
            remove_docker_tags(docker, docker_tags)
        if args.regime in ("after-deletions", "both"):
            # As a user who loads, removes and loads again: every round's files are
            # created among the inodes the previous round (and the clean rounds) freed.
            archive, paths = archive_for("again", f"{prefix}:again")
            again = Rows()
            for i in range(args.n):
                round_of(again, archive, paths, f"{prefix}:again", base / "x-again", i)
                for daemon in daemons.values():
                    daemon.cli("rmi", f"{prefix}:again")
                shutil.rmtree(base / "x-again")
                remove_docker_tags(docker, docker_tags)
            again.report("after deletions (rmi and rm -r between rounds)", size_mb)
        print()
        for row, daemon in daemons.items():
            print(f"{row:18s} daemon peak memory {daemon.peak_rss_mb():.0f} MB")
        if not has_docker:
            print(f"docker load: no dockerd answers on {args.docker_host}")
    finally:
        for daemon in daemons.values():
            daemon.stop()
        remove_docker_tags(docker, docker_tags)
        shutil.rmtree(base, ignore_errors=True)
    return 0


def remove_docker_tags(docker: DockerRef, tags: list[str]) -> None:
    for tag in tags:
        subprocess.run([DOCKER, "-H", docker.host, "rmi", tag], capture_output=True)
    tags.clear()


if __name__ == "__main__":
    sys.exit(main())
