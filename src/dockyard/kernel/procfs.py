"""What /proc says of the host's processes, and the host's `ps`.

Reads only (plain file I/O); `proc` is the procfs mount to read, so tests can
give a tree of their own. `run_ps` is the one place the daemon runs the host's
`ps` (for `top` with ps arguments, as dockerd runs it); `run_ps_sync` the same
for `dockyard-runtime ps`, which has no event loop.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

PROC = "/proc"


@dataclass
class ProcessStat:
    """One process as `ps -f` reads it."""

    pid: int
    ppid: int
    euid: int
    tty_nr: int  # the controlling terminal's device number (0: none)
    cpu_ticks: int  # utime + stime, in clock ticks
    start_ticks: int  # start time after boot, in clock ticks
    comm: str
    args: list[str]  # empty for a kernel thread or a zombie


def read_process(pid: int, proc: str = PROC) -> ProcessStat | None:
    """None if it is gone (or not readable)."""
    base = os.path.join(proc, str(pid))
    try:
        with open(os.path.join(base, "stat"), "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(os.path.join(base, "status"), "rb") as f:
            status = f.read().decode(errors="replace")
        with open(os.path.join(base, "cmdline"), "rb") as f:
            cmdline = f.read()
    except OSError:
        return None
    # comm is in parentheses and may hold spaces or parentheses itself.
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    rest = stat[stat.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid 4, tty_nr 7, utime 14, stime 15, starttime 22
    euid = 0
    for line in status.splitlines():
        if line.startswith("Uid:"):
            euid = int(line.split()[2])
            break
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0")]
    while args and args[-1] == "":
        args.pop()
    return ProcessStat(
        pid=pid,
        ppid=int(rest[1]),
        euid=euid,
        tty_nr=int(rest[4]),
        cpu_ticks=int(rest[11]) + int(rest[12]),
        start_ticks=int(rest[19]),
        comm=comm,
        args=args,
    )


def pid_namespace_members(pid: int, proc: str = PROC) -> set[int]:
    """Every process (host pids) in the pid namespace of `pid`; empty if it is gone."""
    try:
        ns = os.readlink(os.path.join(proc, str(pid), "ns", "pid"))
    except OSError:
        return set()
    pids = set()
    for entry in os.listdir(proc):
        if entry.isdigit():
            try:
                if os.readlink(os.path.join(proc, entry, "ns", "pid")) == ns:
                    pids.add(int(entry))
            except OSError:
                continue  # gone meanwhile
    return pids


def boot_time(proc: str = PROC) -> int:
    """Seconds since the epoch at boot (btime of /proc/stat)."""
    with open(os.path.join(proc, "stat")) as f:
        for line in f:
            if line.startswith("btime "):
                return int(line.split()[1])
    raise OSError(f"no btime in {proc}/stat")


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


async def run_ps(args: list[str]) -> tuple[int, str, str]:
    """The host's `ps ARGS`: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        "ps",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    code = proc.returncode if proc.returncode is not None else -1
    return code, out.decode(errors="replace"), err.decode(errors="replace")


def run_ps_sync(args: list[str]) -> tuple[int, str, str]:
    """run_ps without an event loop."""
    import subprocess

    proc = subprocess.run(["ps", *args], stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return (
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


def uptime(proc: str = PROC) -> float:
    """Seconds since boot (the first field of /proc/uptime)."""
    with open(os.path.join(proc, "uptime")) as f:
        return float(f.read().split()[0])
