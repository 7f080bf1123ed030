"""How fast does the runtime start a container? `true` in busybox, N times.

    sudo .venv/bin/python bench/runtime_start.py [-n 50]

Measures, through dockyard.runtime.launcher.Launcher (forkserver already
warm): time from run() to its return (the container has exec'd), and to
wait() resolving (exit recorded, cgroups removed). Then, on the same rootfs
and the same config.json, `runc run` and `crun run` (whichever are
installed) as whole commands, and prints the ratios. Also prints the
per-phase breakdown of the last start trace.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dockyard.runtime.launcher import Launcher  # noqa: E402
from dockyard.runtime.spec import RunSpec, write_bundle  # noqa: E402

CGROUP_PARENT = f"dockyard-bench-{os.getpid()}"


def make_layer(root: Path) -> Path:
    layer = root / "layer"
    (layer / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", layer / "bin" / "busybox")
    for applet in ("sh", "true"):
        (layer / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "dev", "sys", "etc", "tmp"):
        (layer / d).mkdir()
    return layer


def spec_for(layer: Path, base: Path) -> RunSpec:
    for d in ("upper", "work"):
        (base / d).mkdir(parents=True)
    return RunSpec(
        args=["true"],
        env=["PATH=/bin"],
        hostname="bench",
        rootfs_lower=[str(layer)],
        rootfs_upper=str(base / "upper"),
        rootfs_work=str(base / "work"),
        cgroup_parent=CGROUP_PARENT,
    )


async def bench_dockyard(root: Path, layer: Path, n: int) -> tuple[list[float], list[float], dict]:
    launcher = Launcher(str(root / "run"))
    await launcher.start()
    started, exited = [], []
    trace: dict = {}
    try:
        for i in range(n + 3):  # the first few warm up caches
            base = root / f"d{i}"
            bundle = base / "bundle"
            write_bundle(str(bundle), spec_for(layer, base).to_oci(f"bench{os.getpid()}-{i}"))
            t0 = time.perf_counter()
            link = await launcher.run(f"bench{os.getpid()}-{i}", str(bundle), log_path="")
            t1 = time.perf_counter()
            record = await link.wait()
            t2 = time.perf_counter()
            await link.close()
            assert record.exit_code == 0, record
            if i >= 3:
                started.append((t1 - t0) * 1000)
                exited.append((t2 - t0) * 1000)
        await asyncio.sleep(0.05)  # let the last monitor write its trace
        trace = json.loads((bundle / "start-trace.json").read_text())
    finally:
        await launcher.close()
    return started, exited, trace


def bench_oci_runtime(binary: str, root: Path, layer: Path, n: int) -> list[float] | None:
    if shutil.which(binary) is None:
        return None
    base = root / f"oci-{binary}"
    rootfs = base / "rootfs"
    shutil.copytree(layer, rootfs, symlinks=True)
    oci = spec_for(layer, base).to_oci("x")
    oci["root"] = {"path": str(rootfs), "readonly": False}
    oci.pop("annotations")
    times = []
    flags: list[str] = []
    for i in range(n + 4):
        cid = f"bench-{binary}-{os.getpid()}-{i}"
        oci["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{cid}"
        (base / "config.json").write_text(json.dumps(oci))
        t0 = time.perf_counter()
        proc = subprocess.run(
            [binary, *flags, "run", "--bundle", str(base), cid], capture_output=True
        )
        t1 = time.perf_counter()
        if proc.returncode != 0 and binary == "crun" and not flags and b"hybrid" in proc.stderr:
            # crun refuses this host's cgroup v1 + empty v2 layout; time it without cgroups.
            flags = ["--cgroup-manager=disabled"]
            continue
        if proc.returncode != 0:
            print(f"{binary} not timed: {proc.stderr.decode().strip()}")
            return None
        if i >= 4:
            times.append((t1 - t0) * 1000)
    return times


def summary(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[int(len(values) * 0.9) - 1] if len(values) >= 10 else values[-1]
    return (
        f"median {statistics.median(values):6.2f} ms   p90 {p90:6.2f} ms   min {values[0]:6.2f} ms"
    )


def remove_cgroups() -> None:
    """The per-run cgroup parent, in every controller that is a real cgroup mount
    (here hugetlb may be a plain directory that crun writes files into)."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        path = controller / CGROUP_PARENT
        if not path.is_dir():
            continue
        if not os.path.ismount(controller):
            shutil.rmtree(path, ignore_errors=True)  # plain files, not a cgroup
            continue
        for child in sorted(path.rglob("*"), reverse=True):
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            path.rmdir()


def main() -> int:
    try:
        return run()
    finally:
        remove_cgroups()


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="containers per engine")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dky-bench-") as tmp:
        root = Path(tmp)
        layer = make_layer(root)
        started, exited, trace = asyncio.run(bench_dockyard(root, layer, args.n))
        print(f"dockyard run() -> started  {summary(started)}")
        print(f"dockyard run() -> exited   {summary(exited)}")
        results = {}
        for binary in ("runc", "crun"):
            times = bench_oci_runtime(binary, root, layer, args.n)
            if times is not None:
                results[binary] = times
                print(f"{binary + ' run (whole)':24s} {summary(times)}")
        for binary, times in results.items():
            ratio = statistics.median(exited) / statistics.median(times)
            print(f"dockyard exited / {binary}: {ratio:.2f}x")
        print("last start trace phases:")
        for name, ns in trace.get("phases", {}).items():
            print(f"  {name:24s} {ns / 1e6:7.2f} ms")
        slowest = sorted(trace.get("calls", []), key=lambda c: -c["ns"])[:8]
        print("slowest calls:")
        for call in slowest:
            print(
                f"  {call['process']:7s} {call['call']:20s} {call['ns'] / 1e3:8.1f} us  {str(call['args'])[:60]}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
