"""`top`: the processes of a running container, as dockerd lists them.

dockerd (daemon/top_unix.go) runs the host's `ps` with the user's ps_args (default
`-ef`) plus `-q<the container's pids>` (again without -q if ps refuses it), and
keeps the lines whose PID column is one of the container's pids. With ps_args
that is what happens here too: only the host's ps knows every one of its options,
and `docker top c aux` is meant to show ps's own columns. Without ps_args, the
`ps -ef` table (UID PID PPID C STIME TTY TIME CMD) is read from /proc directly,
formatted as procps formats it: no process started for the common case.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import time

from dockyard.errors import InvalidParameter
from dockyard.kernel import procfs

EF_TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]

# dockerd's validatePSArgs: a column renamed to PID... would fool the PID lookup.
_PID_RENAME = re.compile(r"\s+(\S*)=\s*(PID\S*)")


def ps_ef(pids: set[int], proc: str = procfs.PROC, now: float | None = None) -> list[list[str]]:
    """The rows `ps -ef` prints for `pids` (those still there), by pid."""
    hz = procfs.clock_ticks()
    up = procfs.uptime(proc)
    boot = procfs.boot_time(proc)
    now = time.time() if now is None else now
    rows = []
    for pid in sorted(pids):
        p = procfs.read_process(pid, proc)
        if p is None:
            continue
        elapsed = int(up - p.start_ticks / hz)
        pcpu = min(99, (p.cpu_ticks * 100 // hz) // elapsed) if elapsed > 0 else 0
        rows.append(
            [
                _user(p.euid),
                str(p.pid),
                str(p.ppid),
                str(pcpu),
                _stime(boot + p.start_ticks // hz, now),
                _tty(p.tty_nr),
                _cputime(p.cpu_ticks // hz),
                _cmd(p),
            ]
        )
    return rows


def _user(uid: int) -> str:
    """procps: the name, cut to 7 characters and a '+' past 8; the number without one."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
    return name if len(name) <= 8 else name[:7] + "+"


def _stime(started: float, now: float) -> str:
    """procps's STIME: HH:MM today, MonDD this year, else the year (local time)."""
    ours, theirs = time.localtime(now), time.localtime(started)
    if ours.tm_year != theirs.tm_year:
        return time.strftime("%Y", theirs)
    if ours.tm_yday != theirs.tm_yday:
        return time.strftime("%b%d", theirs)
    return time.strftime("%H:%M", theirs)


def _tty(tty_nr: int, dev: str = "/dev") -> str:
    """procps's name of a terminal: the driver's name for the number, if the host's /dev
    has that node (a container's own devpts terminal is "?" to the host's ps too)."""
    major, minor = (tty_nr >> 8) & 0xFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if tty_nr == 0:
        return "?"
    if 136 <= major <= 143:
        name = f"pts/{minor + (major - 136) * 256}"
    elif major == 4:
        name = f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    else:
        return "?"
    try:
        rdev = os.stat(os.path.join(dev, name)).st_rdev
    except OSError:
        return "?"
    return name if (os.major(rdev), os.minor(rdev)) == (major, minor) else "?"


def _cputime(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hh, rest = divmod(rest, 3600)
    mm, ss = divmod(rest, 60)
    return f"{days}-{hh:02d}:{mm:02d}:{ss:02d}" if days else f"{hh:02d}:{mm:02d}:{ss:02d}"


def _cmd(p: procfs.ProcessStat) -> str:
    """The command line (control characters as '?', as ps shows them), or [comm]."""
    text = " ".join(p.args) if p.args else f"[{p.comm}]"
    return "".join("?" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)


async def ps_with_args(ps_args: str, pids: set[int]) -> dict:
    """dockerd's way: the host's ps with the user's arguments, cut to `pids`."""
    for found in _PID_RENAME.finditer(" " + ps_args):
        if found.group(1) != "pid":
            raise InvalidParameter(f'specifying "{found.group(1)}={found.group(2)}" is not allowed')
    try:
        args = shlex.split(ps_args)
    except ValueError as e:
        raise InvalidParameter(f"invalid ps arguments: {e}") from None
    only = "-q" + ",".join(str(p) for p in sorted(pids))
    code, out, err = await procfs.run_ps([*args, only]) if pids else (1, "", "")
    if code != 0:
        # Some ps options (BSD's f, for one) do not go with -q: dockerd runs it again without.
        code, out, err = await procfs.run_ps(args)
    if code != 0:
        first = err.strip().splitlines()[0] if err.strip() else ""
        raise InvalidParameter(f"Error running ps: exit status {code}: {first}".rstrip(": "))
    return parse_ps(out, pids)


def parse_ps(output: str, pids: set[int]) -> dict:
    """dockerd's parsePSOutput: the lines of `pids`, and the thread lines ("-" in the
    PID column, as `-L`/`m` print) that follow one of them."""
    lines = output.splitlines()
    if not lines:
        raise InvalidParameter("Error running ps: no output")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidParameter("Couldn't find PID field in ps output")
    pid_col = titles.index("PID")
    processes = []
    keep_threads = False
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) <= pid_col:
            continue
        if fields[pid_col] == "-":
            if keep_threads:
                processes.append(fields)
            continue
        try:
            pid = int(fields[pid_col])
        except ValueError:
            raise InvalidParameter(f"Unexpected pid '{fields[pid_col]}'") from None
        keep_threads = pid in pids
        if keep_threads:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}
