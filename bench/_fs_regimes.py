"""What the root file system's deletions cost a bench (see bench/commit_bench.py).

On ext4 without a journal the inode allocator skips every inode freed in the
last minute (recently_deleted), one buffer lookup each: creating files right
after many were deleted nearby is ~10x slower, whatever engine does it. Benches
that create files time them in two labelled regimes, "clean" (nothing deleted
before the rounds end) and "after deletions"; `Sampler` measures the share of
the machine's samples under recently_deleted during a step.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections import Counter
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


class InodeGroups:
    """Which ext4 block groups (inode table regions) a tree's inodes sit in.

    The allocator scans a group's recently freed inodes at every create there
    (recently_deleted), so what decides the "after deletions" cost is how many
    of a new layer's inodes land in groups that the round's removals just
    freed: `reused` gives that share, for each engine alike. None where the
    file system is not ext4 (no /proc/fs/ext4/<device>/mb_groups)."""

    def __init__(self, path: Path) -> None:
        st = path.stat()
        self.per_group = 0
        try:
            uevent = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/uevent")
            name = dict(
                line.split("=", 1) for line in uevent.read_text().splitlines() if "=" in line
            )["DEVNAME"]
            lines = Path(f"/proc/fs/ext4/{name}/mb_groups").read_text().splitlines()
            groups = sum(1 for line in lines if re.match(r"#\d+\s*:", line))
            self.per_group = os.statvfs(path).f_files // groups if groups else 0
        except (OSError, KeyError):
            pass

    def of(self, *trees: str) -> Counter[int]:
        found: Counter[int] = Counter()
        if not self.per_group:
            return found
        for tree in trees:
            for root, dirs, files in os.walk(tree):
                for name in dirs + files:
                    with contextlib.suppress(FileNotFoundError):
                        found[
                            (os.lstat(os.path.join(root, name)).st_ino - 1) // self.per_group
                        ] += 1
        return found

    @staticmethod
    def reused(new: Counter[int], freed: Counter[int]) -> float:
        """The share (%) of `new`'s inodes in groups where `freed` had some."""
        total = sum(new.values())
        return 100.0 * sum(n for g, n in new.items() if g in freed) / total if total else 0.0
