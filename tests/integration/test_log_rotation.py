"""json-file max-size/max-file through the real monitor: the log rotates as with
dockerd, `logs` reads across the files, and a flood cannot fill the disk."""

from __future__ import annotations

import os
from pathlib import Path


def test_log_rotates_and_logs_reads_across_files(daemon, dockyard, inspect, unique):
    name = unique("rot")
    script = "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done"
    proc = dockyard(
        "run", "--name", name, "--log-opt", "max-size=10k", "--log-opt", "max-file=3",
        "busybox", "sh", "-c", script,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    info = inspect(name)
    assert info["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10k", "max-file": "3"},
    }
    log = Path(info["LogPath"])
    files = sorted(p.name for p in log.parent.iterdir() if p.name.startswith(log.name))
    assert files == [log.name, log.name + ".1", log.name + ".2"], files
    # One entry past max-size at most (10 kB = 10000 bytes, go-units' decimal k).
    assert all(os.path.getsize(log.parent / f) < 10_000 + 100 for f in files)
    out = dockyard("logs", name).stdout.splitlines()
    assert out[-1] == "line 1999" and 100 < len(out) < 2000, (len(out), out[:2])
    assert out == [f"line {i}" for i in range(2000 - len(out), 2000)]
    assert dockyard("logs", "--tail", "3", name).stdout == "line 1997\nline 1998\nline 1999\n"
    assert dockyard("rm", name).returncode == 0
    assert not log.parent.exists()


def test_unknown_log_opt_is_refused(dockyard):
    proc = dockyard("create", "--log-opt", "max-sise=1m", "busybox", "true")
    assert proc.returncode == 125
    assert "unknown log opt 'max-sise' for json-file log driver" in proc.stderr
