#!/usr/bin/env python3
"""What recording the start trace costs a start: on against off.

    .venv/bin/python bench/trace_bench.py [-n 40]

Two measures:

1. Whole runs, as a user waits for them: two private daemons (temporary sockets
   and data roots, busybox from scripts/make-base-image), one as shipped and one
   with DOCKYARD_START_TRACE=0 (no TracingKernel in the daemon's network driver,
   the monitor or the init; no trace file), timed in interleaved rounds after a
   warm-up: `dockyard run --rm busybox true`, with and without `--network none`.
   On a busy 2-core machine their noise is larger than the difference sought.
2. The recording itself, in process, many times over (what 1. cannot resolve):
   the container init's and the monitor's set-up run against the recording
   fake kernel with and without a TracingKernel around it, the init's trace
   message (encoded and sent before exec, so it is start time), the daemon's
   step marks, and the monitor's trace file (written after the start is
   reported, so not start time, shown apart).

Prints medians, the difference, and the cost as a share of the measured start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _daemon import REPO, PrivateDaemon, bench_env, time_command

sys.path.insert(0, str(REPO / "src"))


def _env(host: str, tracing: bool) -> dict[str, str]:
    return dict(bench_env(host), DOCKYARD_START_TRACE="1" if tracing else "0")


def whole_runs(n: int) -> dict[str, dict[str, float]]:
    bases, daemons, hosts = [], [], {}
    try:
        for label, tracing in (("on", True), ("off", False)):
            base = Path(tempfile.mkdtemp(prefix=f"dky-bench-trace-{label}-"))
            bases.append(base)
            d = PrivateDaemon(
                base,
                args=("--default-address-pool", "base=10.220.0.0/16,size=24"),
                env={"DOCKYARD_START_TRACE": "1" if tracing else "0"},
                busybox=True,
            )
            daemons.append(d)
            hosts[label] = d.host
        dockyard = [sys.executable, "-m", "dockyard"]
        cmds = {
            "run --rm busybox true": [*dockyard, "run", "--rm", "busybox", "true"],
            "run --rm --network none busybox true": [
                *dockyard, "run", "--rm", "--network", "none", "busybox", "true",
            ],
        }  # fmt: skip
        samples: dict[tuple[str, str], list[float]] = {}
        for round_ in range(n + 2):
            for cmd, argv in cmds.items():
                for label, host in hosts.items():
                    dt = time_command(argv, _env(host, label == "on"))
                    if round_ >= 2:  # warm-up rounds
                        samples.setdefault((cmd, label), []).append(dt)
        out: dict[str, dict[str, float]] = {}
        print(f"Whole runs ({n} interleaved rounds after 2 warm-up rounds):")
        for cmd in cmds:
            on = statistics.median(samples[(cmd, "on")])
            off = statistics.median(samples[(cmd, "off")])
            out[cmd] = {"on": on, "off": off}
            print(
                f"  {cmd:<40} trace on {on * 1000:6.1f} ms   off {off * 1000:6.1f} ms   "
                f"on - off {(on - off) * 1000:+6.2f} ms ({(on - off) / off * 100:+5.1f}%)"
            )
        return out
    finally:
        for d in daemons:
            d.stop()
        for base in bases:
            shutil.rmtree(base, ignore_errors=True)


def _per_start(fn, n: int) -> float:
    """Median seconds of fn() over n runs, in batches (timer overhead amortized)."""
    batch = 20
    times = []
    for _ in range(max(1, n // batch)):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        times.append((time.perf_counter() - t0) / batch)
    return statistics.median(times)


def _paired_difference(base, other, n: int) -> float:
    """Median over batches of (other - base) seconds per run, the two timed back to back
    in each batch, so that load on the machine hits both alike."""
    batch = 20
    diffs = []
    for _ in range(max(1, n // batch)):
        t0 = time.perf_counter()
        for _ in range(batch):
            base()
        t1 = time.perf_counter()
        for _ in range(batch):
            other()
        t2 = time.perf_counter()
        diffs.append(((t2 - t1) - (t1 - t0)) / batch)
    return statistics.median(diffs)


def recording_cost(n: int) -> dict[str, float]:
    from dockyard.engine.start_trace import StartTimeline
    from dockyard.kernel.fake import RecordingKernel
    from dockyard.kernel.trace import TracingKernel, plain_value
    from dockyard.runtime.bundle import config_from_oci
    from dockyard.runtime.cgroups import create_cgroups
    from dockyard.runtime.container_init import encode_trace, init_container
    from dockyard.runtime.spec import BindMount, RunSpec

    spec = RunSpec(
        args=["true"],
        env=["PATH=/bin"],
        hostname="bench",
        rootfs_lower=["/layers/a/diff"],
        rootfs_upper="/c/upper",
        rootfs_work="/c/work",
        network="/run/netns/x",
        mounts=[BindMount("/c/hosts", "/etc/hosts"), BindMount("/c/hostname", "/etc/hostname")],
    )
    cfg = config_from_oci("/c", spec.to_oci("c" * 64))
    cfg.seccomp = None  # loading a filter is not what is measured
    controllers = ["memory", "cpu", "cpuacct", "pids", "devices", "freezer"]

    def start(kernel) -> None:
        create_cgroups(kernel, cfg, controllers)
        init_container(kernel, cfg, (0, 1, 2), controllers)

    calls = TracingKernel(RecordingKernel())
    start(calls)
    count = len(calls.calls)

    def plain() -> None:
        start(RecordingKernel())

    def traced() -> None:
        start(TracingKernel(RecordingKernel()))

    def message() -> None:
        encode_trace(calls.calls, 1, 1)

    def marks() -> None:
        tl = StartTimeline()
        for _ in range(6):
            tl.mark("step")

    def trace_file() -> None:  # as the monitor writes it (runtime/monitor.py)
        raw = {"monitor": calls.calls[:20], "init": calls.calls[20:]}
        data = json.dumps({"calls": raw}, separators=(",", ":"), default=plain_value).encode()
        fd, path = tempfile.mkstemp(prefix="dky-bench-trace-")
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
            os.unlink(path)

    cost = {
        "calls per start (init + monitor set-up)": count,
        "TracingKernel around them (ms)": _paired_difference(plain, traced, n) * 1000,
        "init's trace message, encoded (ms)": _per_start(message, n) * 1000,
        "daemon's step marks (ms)": _per_start(marks, n) * 1000,
        "monitor's trace file, after the start (ms)": _per_start(trace_file, max(n // 10, 40))
        * 1000,
    }
    print(f"\nThe recording itself ({n} starts against the recording fake kernel):")
    for k, v in cost.items():
        print(f"  {k:<46} {v:8.3f}" if isinstance(v, float) else f"  {k:<46} {v:8d}")
    return cost


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=40, help="timed rounds of whole runs")
    ap.add_argument("--micro", type=int, default=4000, help="in-process repetitions")
    ap.add_argument("--no-runs", action="store_true", help="only the in-process measure")
    args = ap.parse_args()
    runs = {} if args.no_runs else whole_runs(args.n)
    cost = recording_cost(args.micro)
    on_path = (
        cost["TracingKernel around them (ms)"]
        + cost["init's trace message, encoded (ms)"]
        + cost["daemon's step marks (ms)"]
    )
    # The network driver's calls of a start on the bridge (a handful; none with a
    # ready spare) cost the same per call as the init's. The monitor's trace file is
    # written after the start is reported; a `run --rm ... true` still waits for it
    # (the exit is handled after it), so it is counted in "all".
    every = on_path + cost["monitor's trace file, after the start (ms)"]
    bases = [("the README's", 42.0)]
    if runs:
        bases.append(("this run's", runs["run --rm busybox true"]["off"] * 1000))
    for label, base in bases:
        print(
            f"Against {label} {base:.1f} ms `run --rm busybox true`: on the start's path "
            f"{on_path:.3f} ms = {on_path / base * 100:.2f}%, all recording {every:.3f} ms = "
            f"{every / base * 100:.2f}% (the budget: 2%)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
