#!/usr/bin/env python3
"""Time image transfers: load, save, push and pull of a multi-layer image.

    python3 bench/image_bench.py [--size-mb 120] [--layers 3] [-n 3]

Starts its own Dockyard daemon (private socket and data root under /tmp) and
its own registry (Debian's docker-registry on a free port of 127.0.0.1), so it
touches nothing of an installed daemon. The image is built here: LAYERS layers
of SIZE_MB in total, half random bytes and half text, in the layout dockerd
20.10's `docker save` writes. Each step is timed N times (medians):

    load     dockyard load -i archive.tar        (unpacking every layer)
    tar -x   tar -xf of the same layer tars      (the floor for unpacking)
    save     dockyard save -o out.tar
    push     dockyard push REGISTRY/bench:v1     (after deleting the registry's copy)
    pull     dockyard pull REGISTRY/bench:v1     (after rmi)
    skopeo   skopeo copy docker://... dir:...    (where installed: the same pull, by skopeo)

and the daemon's peak memory (VmHWM). dockerd rows appear only where a dockerd
is already running (this script never starts one); here it is not installed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _daemon import REPO, PrivateDaemon

sys.path.insert(0, str(REPO / "tests"))

from registry_server import RegistryServer  # noqa: E402


def make_layer(index: int, size: int) -> bytes:
    rng = random.Random(index)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        d = tarfile.TarInfo(f"layer{index}")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(d)
        written, n = 0, 0
        while written < size:
            chunk = min(1 << 20, size - written)
            text = (b"line of text %d\n" % n) * (chunk // 16)
            data = rng.randbytes(chunk) if n % 2 else text
            info = tarfile.TarInfo(f"layer{index}/f{n}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
            written += len(data)
            n += 1
    return buf.getvalue()


def make_archive(layers: list[bytes], tag: str) -> bytes:
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        names = []
        for i, layer in enumerate(layers):
            add(f"l{i}/VERSION", b"1.0")
            add(f"l{i}/json", json.dumps({"id": f"l{i}"}).encode())
            add(f"l{i}/layer.tar", layer)
            names.append(f"l{i}/layer.tar")
        add(config_name, config)
        add(
            "manifest.json",
            json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode(),
        )
    return buf.getvalue()


class Daemon(PrivateDaemon):
    def cli(self, *args: str) -> float:
        """Seconds that `dockyard ARGS` took."""
        start = time.perf_counter()
        self.run(*args)
        return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=120)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("-n", type=int, default=3)
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (the daemon unpacks layers with their owners)")

    base = Path(tempfile.mkdtemp(prefix="dky-bench-", dir="/tmp"))
    per_layer = args.size_mb * 1_000_000 // args.layers
    layers = [make_layer(i, per_layer) for i in range(args.layers)]
    total_mb = sum(len(layer) for layer in layers) / 1e6
    layer_count = len(layers)
    archive = base / "image.tar"
    archive.write_bytes(make_archive(layers, "bench:v1"))
    for i, layer in enumerate(layers):
        (base / f"l{i}.tar").write_bytes(layer)
    del layers  # the daemon's memory is measured, not ours
    registry = RegistryServer()
    daemon = Daemon(base)
    name = f"{registry.host}/bench:v1"
    times: dict[str, list[float]] = {}
    try:
        for _ in range(args.n):
            times.setdefault("load", []).append(daemon.cli("load", "-i", str(archive)))
            daemon.cli("tag", "bench:v1", name)
            out = base / "saved.tar"
            times.setdefault("save", []).append(daemon.cli("save", "-o", str(out), "bench:v1"))
            out.unlink()
            shutil.rmtree(registry.storage, ignore_errors=True)  # a cold registry each round
            times.setdefault("push", []).append(daemon.cli("push", name))
            daemon.cli("rmi", name, "bench:v1")
            times.setdefault("pull", []).append(daemon.cli("pull", name))
            daemon.cli("rmi", name)
            dest = base / "tarx"
            dest.mkdir()
            start = time.perf_counter()
            for i in range(args.layers):
                subprocess.run(["tar", "-xf", str(base / f"l{i}.tar"), "-C", str(dest)], check=True)
            times.setdefault("tar -x", []).append(time.perf_counter() - start)
            shutil.rmtree(dest)
            skopeo = shutil.which("skopeo")
            if skopeo:
                daemon.cli("load", "-i", str(archive))
                daemon.cli("tag", "bench:v1", name)
                daemon.cli("push", name)
                target = base / "skopeo-dir"
                start = time.perf_counter()
                subprocess.run(
                    [skopeo, "copy", "-q", "--src-tls-verify=false", f"docker://{name}", f"dir:{target}"],
                    check=True, capture_output=True,
                )  # fmt: skip
                times.setdefault("skopeo copy (pull)", []).append(time.perf_counter() - start)
                shutil.rmtree(target)
                daemon.cli("rmi", name, "bench:v1")
        peak = daemon.peak_rss_mb()
    finally:
        daemon.stop()
        registry.stop()
        shutil.rmtree(base, ignore_errors=True)

    print(f"image: {layer_count} layers, {total_mb:.0f} MB uncompressed; medians of {args.n}")
    print(f"{'step':<22}{'seconds':>10}{'MB/s':>10}")
    for step, values in times.items():
        median = statistics.median(values)
        print(f"{step:<22}{median:>10.2f}{total_mb / median:>10.0f}")
    if "tar -x" in times:
        ratio = statistics.median(times["load"]) / statistics.median(times["tar -x"])
        print(f"load / tar -x: {ratio:.2f}")
    if "skopeo copy (pull)" in times:
        ratio = statistics.median(times["pull"]) / statistics.median(times["skopeo copy (pull)"])
        print(f"pull / skopeo copy: {ratio:.2f} (skopeo only writes the blobs, it does not unpack)")
    print(f"daemon peak memory (VmHWM): {peak:.0f} MB")
    print("dockerd: not running here (this script never starts one)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
