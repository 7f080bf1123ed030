"""Logs that behave: rotation by size (plain and gzip), reading across rotated files with
--tail and -f, the `none` driver, refusals in dockerd's words, a log deleted under us."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import time


def _log_path(dockyard, name: str) -> str:
    proc = dockyard("inspect", "-f", "{{.LogPath}}", name)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_rotation_keeps_max_file_and_logs_reads_across(dockyard, unique) -> None:
    name = unique("rot")
    proc = dockyard(
        "run", "--name", name, "--log-opt", "max-size=2k", "--log-opt", "max-file=3",
        "busybox", "sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line$i; i=$((i+1)); done",
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        path = _log_path(dockyard, name)
        files = sorted(glob.glob(path + "*"))
        assert files == [path, path + ".1", path + ".2"], files
        assert all(os.path.getsize(f) < 2048 + 200 for f in files)
        # every file is dockerd's json-file format
        with open(path + ".1") as f:
            assert set(json.loads(f.readline())) == {"log", "stream", "time"}
        out = dockyard("logs", name).stdout.splitlines()
        assert out[-1] == "line399"
        assert out == [f"line{i}" for i in range(400 - len(out), 400)]  # oldest dropped, no gap
        assert len(out) > 50
        tail = dockyard("logs", "--tail", str(len(out) - 3), name).stdout.splitlines()
        assert tail == out[3:]
    finally:
        dockyard("rm", "-f", name)


def test_compressed_rotation_is_read(dockyard, unique) -> None:
    name = unique("gz")
    proc = dockyard(
        "run", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=4",
        "--log-opt", "compress=true",
        "busybox", "sh", "-c", "i=0; while [ $i -lt 100 ]; do echo gz$i; i=$((i+1)); done",
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        path = _log_path(dockyard, name)
        assert os.path.exists(path + ".1.gz") and os.path.exists(path + ".3.gz")
        out = dockyard("logs", name).stdout.splitlines()
        assert out[-1] == "gz99" and out == [f"gz{i}" for i in range(100 - len(out), 100)]
    finally:
        dockyard("rm", "-f", name)


def test_follow_across_a_rotation(dockyard, daemon, unique) -> None:
    name = unique("fol")
    proc = dockyard(
        "run", "-d", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=5",
        "busybox", "sh", "-c",
        "sleep 1; i=0; while [ $i -lt 60 ]; do echo f$i; i=$((i+1)); sleep 0.02; done",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    try:
        follow = subprocess.run(
            [sys.executable, "-m", "dockyard", "logs", "-f", name],
            env=daemon.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert follow.stdout.splitlines() == [f"f{i}" for i in range(60)]
        assert os.path.exists(_log_path(dockyard, name) + ".1")
    finally:
        dockyard("rm", "-f", name)


def test_none_driver_and_refusals(dockyard, unique) -> None:
    name = unique("none")
    proc = dockyard("run", "--name", name, "--log-driver", "none", "busybox", "echo", "hi")
    try:
        assert (proc.returncode, proc.stdout) == (0, "hi\n"), proc.stderr
        proc = dockyard("logs", name)
        assert proc.returncode == 1
        assert "configured logging driver does not support reading" in proc.stderr
        assert not os.path.exists(_log_path(dockyard, name))
    finally:
        dockyard("rm", "-f", name)
    proc = dockyard("run", "--rm", "--log-driver", "syslogz", "busybox", "true")
    assert proc.returncode == 125
    assert "logger: no log driver named 'syslogz' is registered" in proc.stderr
    proc = dockyard("run", "--rm", "--log-opt", "max-sise=1m", "busybox", "true")
    assert proc.returncode == 125
    assert "unknown log opt 'max-sise' for json-file log driver" in proc.stderr
    proc = dockyard("run", "--rm", "--log-opt", "max-file=0", "busybox", "true")
    assert proc.returncode == 125 and "max-file cannot be less than 1" in proc.stderr


def test_log_opt_labels_and_env_show_in_logs_details(dockyard, unique) -> None:
    """--log-opt labels/labels-regex/env/env-regex put the named labels and variables
    in every json-file entry ("attrs"), and `logs --details` prints them before the line,
    query-escaped and sorted, as dockerd does; -t times have nine digits."""
    name = unique("det")
    proc = dockyard(
        "run", "--name", name, "--label", "a=b", "--label", "z=q q", "-e", "E=1",
        "-e", "EE=x y&", "--log-opt", "labels=a,missing", "--log-opt", "labels-regex=^z",
        "--log-opt", "env-regex=^E", "busybox", "sh", "-c", "echo hi",
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        with open(_log_path(dockyard, name)) as f:
            entry = json.loads(f.readline())
        assert list(entry) == ["log", "stream", "attrs", "time"]
        assert entry["attrs"] == {"E": "1", "EE": "x y&", "a": "b", "z": "q q"}
        proc = dockyard("logs", "--details", name)
        assert proc.stdout == "E=1,EE=x+y%26,a=b,z=q+q hi\n", proc.stderr
        stamp, line = dockyard("logs", "-t", name).stdout.split(" ", 1)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", stamp) and line == "hi\n"
    finally:
        dockyard("rm", "-f", name)
    # without attributes --details still puts the space before the line
    proc = dockyard("run", "--name", name, "busybox", "echo", "plain")
    try:
        assert dockyard("logs", "--details", name).stdout == " plain\n"
    finally:
        dockyard("rm", "-f", name)
    proc = dockyard("run", "--rm", "--log-opt", "env-regex=(", "busybox", "true")
    assert proc.returncode == 125 and "invalid env-regex log opt" in proc.stderr


def test_default_rotation_is_recorded(dockyard, unique) -> None:
    name = unique("def")
    assert (
        dockyard("create", "--name", name, "--log-driver", "local", "busybox", "true").returncode
        == 0
    )
    try:
        proc = dockyard("start", "-a", name)
        assert proc.returncode == 0, proc.stderr
        assert dockyard("logs", name).returncode == 0
    finally:
        dockyard("rm", name)


def test_log_file_deleted_under_the_daemon(dockyard, unique) -> None:
    name = unique("del")
    proc = dockyard(
        "run", "-d", "--name", name, "busybox", "sh", "-c", "while true; do echo x; sleep 0.1; done"
    )
    assert proc.returncode == 0, proc.stderr
    try:
        path = _log_path(dockyard, name)
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.05)
        os.unlink(path)
        proc = dockyard("logs", name)
        assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr
        time.sleep(0.3)
        running = dockyard("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
        assert running == "true"
    finally:
        dockyard("rm", "-f", name)


def test_since_and_until_across_rotated_files_with_timestamps(dockyard, unique) -> None:
    """--since/--until through the CLI over plain and gzipped rotated files: exactly the
    lines of `logs -t` whose times fall in the window, with their times, and --tail."""
    name = unique("win")
    proc = dockyard(
        "run", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=5",
        "--log-opt", "compress=true",
        "busybox", "sh", "-c", "i=0; while [ $i -lt 150 ]; do echo w$i; i=$((i+1)); done",
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        path = _log_path(dockyard, name)
        assert os.path.exists(path + ".1.gz") and os.path.exists(path + ".4.gz")
        full = dockyard("logs", "-t", name).stdout.splitlines()
        assert len(full) > 40
        stamps = [line.split(" ", 1)[0] for line in full]
        for since, until in ((stamps[5], stamps[-5]), (stamps[len(full) // 2], stamps[-1])):
            got = dockyard("logs", "-t", "--since", since, "--until", until, name)
            assert got.returncode == 0, got.stderr
            want = [line for line, t in zip(full, stamps, strict=True) if since <= t <= until]
            assert got.stdout.splitlines() == want
        mid = stamps[len(full) // 2]
        got = dockyard("logs", "--since", mid, "--tail", "3", name).stdout.splitlines()
        assert got == [line.split(" ", 1)[1] for line in full[-3:]]
    finally:
        dockyard("rm", "-f", name)


def test_daemon_json_log_driver_and_opts_are_the_default(daemon_factory, tmp_path) -> None:
    """daemon.json's log-driver and log-opts apply to a container that names neither;
    --log-opt without --log-driver keeps the daemon's driver with the container's opts."""
    config = tmp_path / "daemon.json"
    config.write_text(
        json.dumps({"log-driver": "local", "log-opts": {"max-size": "1k", "max-file": "2"}})
    )
    d = daemon_factory(extra_args=["--config-file", str(config)])
    d.import_busybox()
    script = "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done"
    proc = d.dockyard("run", "--name", "dflt", "busybox", "sh", "-c", script)
    try:
        assert proc.returncode == 0, proc.stderr
        lc = json.loads(
            d.dockyard("inspect", "-f", "{{json .HostConfig.LogConfig}}", "dflt").stdout
        )
        assert lc == {"Type": "local", "Config": {"max-size": "1k", "max-file": "2"}}
        path = _log_path(d.dockyard, "dflt")
        assert sorted(glob.glob(path + "*")) == [path, path + ".1.gz"]  # local compresses
        assert d.dockyard("logs", "dflt").stdout.splitlines()[-1] == "line299"
        proc = d.dockyard("create", "--name", "own", "--log-opt", "max-size=5k", "busybox", "true")
        assert proc.returncode == 0, proc.stderr
        lc = json.loads(d.dockyard("inspect", "-f", "{{json .HostConfig.LogConfig}}", "own").stdout)
        assert lc == {"Type": "local", "Config": {"max-size": "5k"}}
    finally:
        d.dockyard("rm", "-f", "dflt", "own")
