#!/usr/bin/env python3
"""Time `dockyard load` and `dockyard import` against `tar -x` of the same layers.

    python3 bench/load_bench.py [-n 5] [--debian ROOTFS.tar]

Two images: the 3-layer 120 MB image of image_bench.py (1 MB files, half
random, half text) and a Debian rootfs (thousands of small files): by default
one made here with mmdebstrap (minbase bookworm from the configured mirror,
as `dockyard image bootstrap debian` does; ~45 s, once), or the tar given with
--debian. Its device nodes are left out for `load`, which refuses them in an
untrusted archive. Each step N times, medians, MB/s of uncompressed layers:

    load           dockyard load -i archive.tar (hash, keep the blob, unpack, sync)
    import         dockyard import rootfs.tar (the Debian rootfs only)
    tar -x         tar -xf of the same layer tars, from the page cache
    tar -x + sync  the same followed by sync (a load syncs before a layer appears)

Starts its own daemon on a private socket and data root under /tmp.
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
sys.path.insert(0, str(REPO / "src"))

from image_bench import Daemon, make_archive, make_layer  # noqa: E402


def debian_rootfs(path: Path) -> bytes:
    from dockyard.cli import base_images

    base_images.debian_rootfs(
        base_images.DEFAULT_SUITE,
        path,
        mirror=base_images.configured_mirror(),
        variant="minbase",
        include=[],
    )
    return path.read_bytes()


def without_devices(data: bytes) -> bytes:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data)) as src,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst,
    ):
        for m in src:
            if not (m.ischr() or m.isblk()):
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    return out.getvalue()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=5)
    p.add_argument(
        "--debian", type=Path, help="a Debian rootfs tar (default: made with mmdebstrap)"
    )
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (the daemon unpacks layers with their owners)")
    base = Path(tempfile.mkdtemp(prefix="dky-bench-", dir="/tmp"))
    try:
        print("making the images ...", file=sys.stderr, flush=True)
        layers = [make_layer(i, 40_000_000) for i in range(3)]
        deb = args.debian.read_bytes() if args.debian else debian_rootfs(base / "debian.tar")
        deb_plain = without_devices(deb)
        cases = {
            "3 x 40 MB": (make_archive(layers, "bench:v1"), layers, "bench:v1"),
            "debian rootfs": (make_archive([deb_plain], "deb:v1"), [deb_plain], "deb:v1"),
        }
        (base / "rootfs.tar").write_bytes(deb)
        del layers, deb
        (base / "d").mkdir()
        daemon = Daemon(base / "d")
        times: dict[tuple[str, str], list[float]] = {}
        sizes: dict[str, float] = {}
        try:
            for case, (archive, layer_tars, tag) in cases.items():
                (base / "a.tar").write_bytes(archive)
                paths = []
                for i, layer in enumerate(layer_tars):
                    paths.append(base / f"l{i}.tar")
                    paths[-1].write_bytes(layer)
                sizes[case] = sum(len(layer) for layer in layer_tars) / 1e6
                for _ in range(args.n):
                    times.setdefault((case, "load"), []).append(
                        daemon.cli("load", "-i", str(base / "a.tar"))
                    )
                    daemon.cli("rmi", tag)
                    if case == "debian rootfs":
                        times.setdefault((case, "import"), []).append(
                            daemon.cli("import", str(base / "rootfs.tar"), "imported:1")
                        )
                        daemon.cli("rmi", "imported:1")
                    dest = base / "x"
                    dest.mkdir()
                    start = time.perf_counter()
                    for path in paths:
                        subprocess.run(["tar", "-xf", str(path), "-C", str(dest)], check=True)
                    untarred = time.perf_counter()
                    subprocess.run(["sync"], check=True)
                    times.setdefault((case, "tar -x"), []).append(untarred - start)
                    times.setdefault((case, "tar -x + sync"), []).append(
                        time.perf_counter() - start
                    )
                    shutil.rmtree(dest)
        finally:
            daemon.stop()
        for case in cases:
            floor = statistics.median(times[(case, "tar -x + sync")])
            for (c, step), ts in times.items():
                if c != case:
                    continue
                med = statistics.median(ts)
                print(
                    f"{case:14s} {step:14s} {sizes[case] / med:7.0f} MB/s  "
                    f"({med:.2f} s, {floor / med:.2f} x tar -x + sync)"
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
