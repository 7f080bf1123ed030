#!/usr/bin/env python3
"""The least CPU any `load` of an archive costs here, next to `tar -x` of its layers.

    python3 bench/load_floor.py /tmp/debian-bookworm.tar [-n 5] [--dir /var/lib]

A load cannot do less than: receive the archive from its client (here the
cheapest way there is: sendfile(2) into a unix socket, recv_into a reused
buffer), hash every byte of each layer (sha256: the diff_id it must check
against the image's config) and make the layer's files (the kernel work of
`tar -x`, which is nearly all of tar's time). This prints each part's CPU
time, medians of interleaved rounds, and what they add up to against the
wall time of `tar -x` (and `tar -x && sync`: a load syncs before a layer
appears) of the same layers. Spread perfectly over the machine's cores, the
sum is the shortest wall time a load could have: whatever an engine does
per entry (parse, check, record the tar-split) comes on top.

Clean regime only (see unpack_bench): each round extracts into a new
directory, all removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from unpack_bench import layers_of  # noqa: E402


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def receive_and_hash(archive: Path, layer_bytes: int) -> float:
    """CPU seconds (both ends) to send `archive` through a unix socket and sha256
    as many bytes of it as the layers hold."""
    size = archive.stat().st_size
    a, b = socket.socketpair()

    def send() -> None:
        with open(archive, "rb") as f:
            off = 0
            while off < size:
                off += os.sendfile(a.fileno(), f.fileno(), off, size - off)
        a.close()

    buf = memoryview(bytearray(1 << 20))
    sha = hashlib.sha256()
    hashed = 0
    start = own_cpu()
    sender = threading.Thread(target=send)
    sender.start()
    while n := b.recv_into(buf):
        take = min(n, layer_bytes - hashed)
        if take > 0:
            sha.update(buf[:take])
            hashed += take
    sender.join()
    b.close()
    return own_cpu() - start


def untar(paths: list[Path], dest: Path, sync: bool) -> tuple[float, float]:
    """(wall, CPU) of tar -x of `paths` into `dest` (then sync)."""
    cpu0 = children_cpu()
    start = time.perf_counter()
    for path in paths:
        subprocess.run(["tar", "-xf", str(path), "-C", str(dest)], check=True)
    if sync:
        os.sync()
    return time.perf_counter() - start, children_cpu() - cpu0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archive", type=Path, help="a docker save archive")
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--dir", type=Path, default=Path("/var/lib"))
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dky-load-floor-", dir=args.dir))
    try:
        layers = layers_of(args.archive)
        layer_bytes = sum(len(layer) for layer in layers)
        paths = []
        for i, layer in enumerate(layers):
            paths.append(base / f"l{i}.tar")
            paths[-1].write_bytes(layer)
        os.sync()
        tar_wall, tar_cpu, sync_wall, recv_cpu = [], [], [], []
        for i in range(args.n):
            for sync in (False, True):
                dest = base / f"x{i}{'s' if sync else ''}"
                dest.mkdir()
                wall, cpu = untar(paths, dest, sync)
                (sync_wall if sync else tar_wall).append(wall)
                if not sync:
                    tar_cpu.append(cpu)
            recv_cpu.append(receive_and_hash(args.archive, layer_bytes))
        med = statistics.median
        cores = os.cpu_count() or 1
        floor_cpu = med(tar_cpu) + med(recv_cpu)
        floor_wall = floor_cpu / cores
        print(f"{layer_bytes / 1e6:.0f} MB of layers, {args.n} rounds, medians, {cores} cores")
        print(f"  tar -x                 wall {med(tar_wall):.3f} s  CPU {med(tar_cpu):.3f} s")
        print(f"  tar -x && sync         wall {med(sync_wall):.3f} s")
        print(f"  receive + sha256       CPU {med(recv_cpu):.3f} s")
        print(f"  a load's least CPU     {floor_cpu:.3f} s (the file work as tar's + the above)")
        print(
            f"  spread over {cores} cores  {floor_wall:.3f} s wall at best:"
            f" {med(tar_wall) / floor_wall:.2f} x tar -x,"
            f" {med(sync_wall) / floor_wall:.2f} x tar -x && sync (> 1: faster)"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
