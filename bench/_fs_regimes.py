"""What the root file system's deletions cost a bench (see bench/commit_bench.py).

On ext4 without a journal the inode allocator skips every inode freed in the
last minute (recently_deleted), one buffer lookup each: creating files right
after many were deleted nearby is ~10x slower, whatever engine does it. Benches
that create files time them in two labelled regimes, "clean" (nothing deleted
before the rounds end) and "after deletions"; `Sampler` measures the share of
the machine's samples under recently_deleted during a step.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path


class Sampler:
    """`perf record -a -g` while a step runs; the share of its samples under
    recently_deleted (the kernel skipping just-freed inodes)."""

    def __init__(self, base: Path) -> None:
        self.out = base / "perf.data"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["perf", "record", "-a", "-g", "-F", "499", "-o", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)  # perf's set-up, before the step

    def stop(self) -> float:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait()
        report = subprocess.run(
            ["perf", "report", "-i", str(self.out), "--children", "--sort", "symbol",
             "--stdio", "-g", "none"],
            capture_output=True, text=True,
        ).stdout  # fmt: skip
        self.out.unlink(missing_ok=True)
        for line in report.splitlines():
            if re.search(r"\] recently_deleted\b", line):
                return float(re.findall(r"([\d.]+)%", line)[0])
        return 0.0
