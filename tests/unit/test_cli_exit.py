"""The command's entry point (run) leaves without the interpreter's teardown: what it
printed still arrives whole, and its exit code is the command's."""

from __future__ import annotations

import os
import subprocess
import sys

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")
LAUNCHER = (
    f"import sys; sys.path.insert(0, {os.path.abspath(SRC)!r}); "
    "from dockyard.cli.main import run; raise SystemExit(run())"
)


def launch(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKYARD_HOST": "unix:///nonexistent/dky.sock"}
    return subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *args], env=env, timeout=60, **kw)


def test_output_to_a_pipe_arrives_whole():
    from dockyard.cli.main import main_help

    proc = launch("--help", capture_output=True)
    assert proc.returncode == 0
    assert proc.stdout.decode() == main_help()


def command(body: str) -> subprocess.CompletedProcess:
    """run() around a command whose work is `body` (its exit code last)."""
    code = (
        f"import sys; sys.path.insert(0, {os.path.abspath(SRC)!r}); import atexit\n"
        "from dockyard.cli import main as m\n"
        f"def fake(): {body}\n"
        "m.main = fake\n"
        "raise SystemExit(m.run())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, timeout=60, env=env
    )


def test_what_a_command_left_buffered_arrives_and_atexit_work_still_runs():
    # a pipe is not a terminal: Python buffers stdout, and no teardown flushes it here
    proc = command("sys.stdout.write('x' * 1000 + 'end'); return 3")
    assert proc.returncode == 3 and proc.stdout == b"x" * 1000 + b"end"
    # a command that left work for the teardown gets it
    proc = command("atexit.register(lambda: print('flushed at exit')); return 4")
    assert proc.returncode == 4 and proc.stdout == b"flushed at exit\n"


def test_exit_codes_and_errors_are_the_commands():
    proc = launch("nosuchverb", capture_output=True)
    assert proc.returncode == 1
    assert b"unknown command: dockyard nosuchverb" in proc.stderr
    proc = launch("ps", capture_output=True)
    assert proc.returncode == 1 and b"Cannot connect" in proc.stderr


def test_a_reader_that_left_is_not_an_error():
    r, w = os.pipe()
    os.close(r)  # `dockyard run --help | true`: nobody reads
    proc = launch("run", "--help", stdout=w, stderr=subprocess.PIPE)
    os.close(w)
    assert proc.returncode == 0
    assert b"Traceback" not in proc.stderr and b"Exception ignored" not in proc.stderr
