"""`top`'s `ps -ef` table read from /proc (a tree made here), and dockerd's parsing of
the host's ps output for ps_args."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from dockyard.engine import container_top
from dockyard.errors import InvalidParameter

HZ = os.sysconf("SC_CLK_TCK")


def _proc(tmp: Path, pid: int, *, ppid: int, uid: int, comm: str, args: list[str],
          cpu: int, start: int, tty: int = 0) -> None:  # fmt: skip
    d = tmp / str(pid)
    d.mkdir(parents=True)
    # fields 3..22: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    # cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime
    fields = ["S", ppid, pid, pid, tty, -1, 0, 0, 0, 0, 0, cpu, 0, 0, 0, 20, 0, 1, 0, start]
    (d / "stat").write_text(f"{pid} ({comm}) " + " ".join(map(str, fields)) + " 0 0\n")
    (d / "status").write_text(f"Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in args))


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    now = time.time()
    (tmp_path / "uptime").write_text("1000.00 10.00\n")
    (tmp_path / "stat").write_text(f"cpu 1 2 3\nbtime {int(now) - 1000}\n")
    _proc(tmp_path, 7, ppid=1, uid=0, comm="sleep", args=["sleep", "3600"], cpu=0,
          start=990 * HZ)  # fmt: skip
    # 50 s of CPU in the 100 s it has lived: 50%.
    _proc(tmp_path, 9, ppid=7, uid=0, comm="yes", args=["yes", "a\tb"], cpu=50 * HZ,
          start=900 * HZ)  # fmt: skip
    _proc(tmp_path, 12, ppid=7, uid=65534, comm="kworker", args=[], cpu=0, start=999 * HZ)
    return tmp_path


def test_the_ps_ef_table_as_procps_formats_it(proc: Path) -> None:
    now = time.time()
    rows = container_top.ps_ef({12, 9, 7, 404}, str(proc), now=now)
    assert [r[1] for r in rows] == ["7", "9", "12"]  # by pid; a pid that is gone is left out
    sleep, yes, kthread = rows
    assert sleep[0] == "root" and sleep[2] == "1" and sleep[3] == "0"
    assert sleep[5] == "?" and sleep[6] == "00:00:00" and sleep[7] == "sleep 3600"
    assert yes[3] == "50" and yes[6] == "00:00:50"
    assert yes[7] == "yes a?b"  # control characters as ps shows them
    assert kthread[0] == "nobody" and kthread[7] == "[kworker]"
    assert all(len(r) == len(container_top.EF_TITLES) for r in rows)


def test_stime_and_time_columns() -> None:
    now = time.mktime((2026, 11, 29, 15, 0, 0, 0, 0, -1))
    assert container_top._stime(now - 3600, now) == "14:00"
    assert container_top._stime(now - 3 * 86400, now) == "Nov26"
    assert container_top._stime(now - 400 * 86400, now) == "2025"
    assert container_top._cputime(59) == "00:00:59"
    assert container_top._cputime(2 * 86400 + 3661) == "2-01:01:01"


def test_long_user_names_are_cut_as_procps_cuts_them(monkeypatch) -> None:
    class Entry:
        pw_name = "systemd-timesync"

    monkeypatch.setattr(container_top.pwd, "getpwuid", lambda uid: Entry)
    assert container_top._user(100) == "systemd+"
    monkeypatch.setattr(container_top.pwd, "getpwuid", lambda uid: (_ for _ in ()).throw(KeyError))
    assert container_top._user(4242) == "4242"


def test_ps_output_is_cut_to_the_containers_pids_with_their_threads() -> None:
    out = (
        "PID LWP COMMAND\n"
        "  1   1 init\n"
        "  7   - java -jar app\n"
        "  -   8 -\n"
        "  -   9 -\n"
        " 20   - other\n"
        "  -  21 -\n"
    )
    got = container_top.parse_ps(out, {7})
    assert got["Titles"] == ["PID", "LWP", "COMMAND"]
    assert got["Processes"] == [["7", "-", "java -jar app"], ["-", "8", "-"], ["-", "9", "-"]]
    with pytest.raises(InvalidParameter, match="Couldn't find PID field"):
        container_top.parse_ps("USER COMMAND\nroot sh\n", {7})


@pytest.mark.parametrize("args", ["-o user=PID", "-o pid,user=PIDX", "aux -o comm=PID"])
def test_a_column_renamed_to_pid_is_refused_as_dockerd_refuses_it(args: str) -> None:
    with pytest.raises(InvalidParameter, match="is not allowed"):
        asyncio.run(container_top.ps_with_args(args, {1}))
