#!/usr/bin/env python3
"""Time `dockyard-runtime run` of one bundle against `runc run` and `crun run`.

    python3 bench/oci_runtime_bench.py [-n 20]

The bundle: a busybox rootfs directory, `dockyard-runtime spec`'s config with
args ["true"], no terminal. Each runtime gets its own --root under a temp
dir. Rounds are interleaved (each round runs every runtime once), so load on
the machine hits all alike; a warm-up round first. Prints median and p90 of
the whole process, and the ratio dockyard-runtime / each other runtime.

Then where dockyard-runtime's time goes: the interpreter (`python -S -c
pass`), the modules `run` imports, and the rest (create's fork, namespaces,
mounts, pivot_root, exec, waiting, delete).

dockyard-runtime is launched as scripts/install.sh installs it (`python -S`
and this checkout's sources). runc and crun are used where installed (crun
also needs a v1 hugetlb hierarchy on a v1 host:
`mkdir /sys/fs/cgroup/hugetlb; mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb`).
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_bundle(base: Path, launcher: Path) -> Path:
    bundle = base / "bundle"
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "true"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "sys", "dev", "tmp"):
        (rootfs / d).mkdir()
    subprocess.run([str(launcher), "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["true"]
    config["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def write_launcher(path: Path) -> None:
    path.write_text(
        f"#!{sys.executable} -S\nimport sys\nsys.path.insert(0, {str(REPO / 'src')!r})\n"
        "from dockyard.runtime.oci_cli import entry\nentry()\n"
    )
    path.chmod(0o755)


def timed(cmd: list[str], cwd: Path) -> float | str:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit {proc.returncode}"
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="dky-ocibench-", dir="/tmp"))
    launcher = base / "dockyard-runtime"
    runtimes: dict[str, list[str]] = {"dockyard-runtime": [str(launcher)]}
    try:
        # As scripts/install.sh does: with PYTHONDONTWRITEBYTECODE set, every run
        # would otherwise compile what it imports (~300 ms here under load).
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(REPO / "src")], capture_output=True
        )
        write_launcher(launcher)
        bundle = make_bundle(base, launcher)
        for name in ("runc", "crun"):
            path = shutil.which(name)
            if path:
                runtimes[name] = [path]
        results: dict[str, list[float]] = {name: [] for name in runtimes}
        broken: dict[str, str] = {}
        for rnd in range(args.n + 1):
            for name, cmd in runtimes.items():
                if name in broken:
                    continue
                root = base / f"root-{name}"
                out = timed([*cmd, "--root", str(root), "run", f"b{rnd}"], bundle)
                if isinstance(out, str):
                    broken[name] = out
                elif rnd > 0:
                    results[name].append(out)
        src = str(REPO / "src")
        bare = [timed([sys.executable, "-S", "-c", "pass"], bundle) for _ in range(args.n)]
        imports = [
            timed(
                [sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {src!r}); "
                 "import dockyard.runtime.oci_cli, dockyard.runtime.oci_lifecycle"],
                bundle,
            )
            for _ in range(args.n)
        ]  # fmt: skip
        print(f'one bundle (busybox, args ["true"]), {args.n} interleaved rounds, whole processes')
        print(f"{'runtime':<18}{'median ms':>10}{'p90 ms':>10}")
        for name, times in results.items():
            if name in broken:
                print(f"{name:<18}  not measured: {broken[name]}")
                continue
            times.sort()
            p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
            print(f"{name:<18}{statistics.median(times) * 1000:>10.1f}{p90 * 1000:>10.1f}")
        ours = results["dockyard-runtime"]
        if ours and "dockyard-runtime" not in broken:
            for name, times in results.items():
                if name != "dockyard-runtime" and times and name not in broken:
                    ratio = statistics.median(ours) / statistics.median(times)
                    print(f"ratio dockyard-runtime / {name}: {ratio:.2f}")
            interp = statistics.median([v for v in bare if isinstance(v, float)])
            startup = statistics.median([v for v in imports if isinstance(v, float)])
            print(
                f"where dockyard-runtime's {statistics.median(ours) * 1000:.1f} ms go: "
                f"the interpreter {interp * 1000:.1f} ms (`python -S -c pass`), "
                f"the imports `run` needs {(startup - interp) * 1000:.1f} ms, "
                f"the container itself {(statistics.median(ours) - startup) * 1000:.1f} ms"
            )
        print(f"load average: {os.getloadavg()[0]:.2f} (2 cores)")
        return 0
    finally:
        # A failed round may leave a container: delete it with its own runtime.
        for name, cmd in runtimes.items():
            root = base / f"root-{name}"
            for cid in os.listdir(root) if root.exists() else []:
                subprocess.run(
                    [*cmd, "--root", str(root), "delete", "-f", cid], capture_output=True
                )
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
