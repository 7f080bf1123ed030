#!/usr/bin/env python3
"""Time Dockerfile builds: cold, fully cached, and after a one-file change.

    python3 bench/build_bench.py [--files 400] [--kb 8] [-n 3] [--base busybox]

Starts its own Dockyard daemon (private socket and data root under /tmp),
imports busybox into it (scripts/make-base-image), and builds a small app:

    FROM <base>
    RUN   a few shell steps (mkdir, write a file)
    COPY  a generated source tree (FILES files of KB kB)
    RUN   a step reading the tree (ls -R | wc, checksum)
    CMD   ...

Rows (medians of N): cold (--no-cache), cached (nothing changed: every step
`Using cache`), one file changed (the COPY and the steps after it rerun),
and where the cold build's time goes (context upload, RUN steps, COPY,
commits), from the build's own step timings; then a context with one big file
(--big-mb) and the daemon's peak memory (VmHWM) around its build. dockerd and `buildah bud` rows
appear only where they are installed and running (this script starts no
other engine); here neither is.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _daemon import PrivateDaemon

DOCKERFILE = """\
FROM {base}
RUN mkdir -p /srv/app && echo prepared > /srv/app/.prepared
RUN echo "step two" > /srv/two
COPY src/ /srv/app/src/
RUN ls -R /srv/app | wc -l > /srv/count && md5sum /srv/app/src/f0000.txt > /srv/sum
CMD ["cat", "/srv/count"]
"""


class Daemon(PrivateDaemon):
    def build(self, context: Path, *args: str) -> tuple[float, str]:
        start = time.perf_counter()
        proc = self.run("build", *args, str(context))
        return time.perf_counter() - start, proc.stdout


def make_context(root: Path, files: int, kb: int, base: str) -> None:
    rng = random.Random(7)
    src = root / "src"
    src.mkdir(parents=True)
    for i in range(files):
        sub = src / f"d{i % 20:02d}" if i else src
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:04d}.txt").write_bytes(rng.randbytes(kb * 1024))
    (root / "Dockerfile").write_text(DOCKERFILE.format(base=base))


def step_times(output: str) -> dict[str, float]:
    """Seconds per instruction kind, from the CLI's ` ---> Step N/M took Xs` lines."""
    out: dict[str, float] = {}
    current = ""
    for line in output.splitlines():
        m = re.match(r"Step \d+/\d+ : (\w+)", line)
        if m:
            current = m.group(1)
        t = re.match(r" ---> Step \d+/\d+ took ([\d.]+)s", line)
        if t and current:
            out[current] = out.get(current, 0.0) + float(t.group(1))
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=400)
    p.add_argument("--kb", type=int, default=8)
    p.add_argument("-n", type=int, default=3)
    p.add_argument("--base", default="busybox")
    p.add_argument("--big-mb", type=int, default=512, help="a context with one big file (0: skip)")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (RUN steps are real containers)")
    base = Path(tempfile.mkdtemp(prefix="dky-bench-build-", dir="/tmp"))
    daemon = Daemon(
        base, args=("--default-address-pool", "base=10.200.0.0/14,size=24"), busybox=True
    )
    try:
        ctx = base / "ctx"
        make_context(ctx, args.files, args.kb, args.base)
        size_mb = args.files * args.kb / 1024
        print(f"context: {args.files} files, {size_mb:.1f} MB; base {args.base}; n={args.n}")
        cold, cached, changed = [], [], []
        parts: dict[str, list[float]] = {}
        target = ctx / "src" / "d05" / "f0005.txt"
        for i in range(args.n):
            t, out = daemon.build(ctx, "--no-cache", "-t", "bench:cold")
            cold.append(t)
            for kind, secs in step_times(out).items():
                parts.setdefault(kind, []).append(secs)
            t, out = daemon.build(ctx, "-t", "bench:cold")
            assert out.count("Using cache") == 5, out
            cached.append(t)
            target.write_bytes(f"change {i} {time.time()}".encode())
            t, out = daemon.build(ctx, "-t", "bench:cold")
            assert out.count("Using cache") == 2, out
            changed.append(t)
        print(f"{'build':<22}{'dockyard':>10}")
        print(f"{'cold (--no-cache)':<22}{median(cold):>9.2f}s")
        print(f"{'fully cached':<22}{median(cached):>9.2f}s")
        print(f"{'one file changed':<22}{median(changed):>9.2f}s")
        print(f"cached / cold: {median(cached) / median(cold):.2f}")
        print("where a cold build's time goes (median seconds, summed per instruction):")
        for kind, values in sorted(parts.items(), key=lambda kv: -median(kv[1])):
            print(f"  {kind:<10}{median(values):>7.2f}s")
        if args.big_mb:
            big = base / "big"
            big.mkdir()
            (big / "Dockerfile").write_text("FROM busybox\nCOPY blob /blob\n")
            with (big / "blob").open("wb") as f:
                chunk = random.Random(1).randbytes(1 << 20)
                for _ in range(args.big_mb):
                    f.write(chunk)
            before = daemon.peak_rss_mb()
            t, _ = daemon.build(big, "-t", "bench:big")
            print(
                f"a {args.big_mb} MB context: {t:.2f}s, daemon peak RSS {before:.0f} MB before, "
                f"{daemon.peak_rss_mb():.0f} MB after"
            )
        others = [e for e in ("dockerd", "buildah") if shutil.which(e)]
        if not others:
            print("dockerd and buildah are not installed here: no side-by-side rows")
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
