"""dockyard-runtime's parsing, without root: signals, sizes, ids, exec's process JSON, hooks."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess

import pytest

from dockyard.errors import RuntimeFailure
from dockyard.runtime.bundle import config_from_oci
from dockyard.runtime.oci_cli import UsageError, default_spec, parse_args, parse_signal, parse_size
from dockyard.runtime.oci_exec import process_config
from dockyard.runtime.oci_hooks import hooks_of, run_hooks
from dockyard.runtime.oci_state import check_id


@pytest.mark.parametrize(
    ("text", "value"),
    [("KILL", 9), ("SIGKILL", 9), ("9", 9), ("term", 15), ("SIGUSR1", int(signal.SIGUSR1))],
)
def test_signals_by_name_or_number(text: str, value: int) -> None:
    assert parse_signal(text) == value


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "999", "-9", ""])
def test_unknown_signals_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_signal(text)


def test_sizes() -> None:
    assert parse_size("64m") == 64 << 20
    assert parse_size("1g") == 1 << 30
    assert parse_size("1024") == 1024
    assert parse_size("-1") == -1
    with pytest.raises(UsageError):
        parse_size("lots")


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../x", "a b", "x\n"])
def test_container_ids_that_could_escape_the_root_are_refused(bad: str) -> None:
    with pytest.raises(RuntimeFailure):
        check_id(bad)


def test_exec_process_json_replaces_the_containers_process() -> None:
    base = config_from_oci("/b", default_spec())
    cfg = process_config(
        base,
        {
            "args": ["ls", "-l"],
            "env": ["A=1"],
            "cwd": "/tmp",
            "user": {"uid": 5, "gid": 6, "additionalGids": [7]},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
        },
    )
    assert (cfg.args, cfg.env, cfg.cwd, cfg.uid, cfg.gid) == (["ls", "-l"], ["A=1"], "/tmp", 5, 6)
    assert cfg.additional_gids == [7] and cfg.bounding == ["CAP_KILL"] and cfg.permitted == []
    assert cfg.mounts == base.mounts and cfg.cgroup_path == base.cgroup_path
    for bad in ({"args": []}, {}, {"args": ["x"], "user": {"uid": "root"}}):
        with pytest.raises(RuntimeFailure):
            process_config(base, bad)


def test_hooks_are_checked_before_anything_runs() -> None:
    with pytest.raises(RuntimeFailure, match=r"hooks.poststart\[0\].path"):
        hooks_of({"hooks": {"poststart": [{"path": "rel"}]}}, "poststart")
    with pytest.raises(RuntimeFailure, match="must be a list"):
        hooks_of({"hooks": {"prestart": {"path": "/x"}}}, "prestart")
    with pytest.raises(RuntimeFailure, match="timeout"):
        run_hooks({"hooks": {"prestart": [{"path": "/bin/true", "timeout": -1}]}}, "prestart", {})


def test_runc_global_flags_and_create_flags_parse() -> None:
    opts = parse_args(
        [
            "--root",
            "/r",
            "--log",
            "/l",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "--console-socket",
            "/s",
            "id1",
        ]
    )
    assert (opts.root, opts.log, opts.log_format, opts.bundle, opts.pid_file) == (
        "/r",
        "/l",
        "json",
        "/b",
        "/p",
    )
    with pytest.raises(UsageError):
        parse_args(["--log-format", "xml", "state", "x"])
    with pytest.raises(UsageError):
        parse_args(["create", "--checkpoint", "x", "id"])


def test_runc_command_lines_as_containerd_and_users_write_them() -> None:
    opts = parse_args(["--root=/r", "run", "-d", "--bundle=/b", "c1"])
    assert (opts.root, opts.command, opts.detach, opts.bundle, opts.id) == (
        "/r",
        "run",
        True,
        "/b",
        "c1",
    )
    # Flags after the id still count (runc's urfave/cli does not care either).
    opts = parse_args(["delete", "c1", "--force"])
    assert (opts.id, opts.force) == ("c1", True)
    opts = parse_args(["kill", "--all", "c1", "KILL"])
    assert (opts.all, opts.id, opts.signal) == (True, "c1", "KILL")
    assert parse_args(["kill", "c1"]).signal == "SIGTERM"
    # Everything after exec's id is the process's own command line, flags included.
    opts = parse_args(["exec", "-e", "A=1", "--env", "B=2", "-t", "c1", "ls", "-l", "--", "x"])
    assert (opts.env, opts.tty, opts.id, opts.args) == (
        ["A=1", "B=2"],
        True,
        "c1",
        ["ls", "-l", "--", "x"],
    )
    assert parse_args(["ps", "--format", "json", "c1", "-ef"]).ps_args == ["-ef"]
    assert parse_args(["update", "--pids-limit", "5", "c1"]).pids_limit == 5
    assert parse_args(["--version"]).version


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus", "x"], "no such command 'bogus'"),
        (["--bogus", "state", "x"], "flag provided but not defined: --bogus"),
        (["state"], "requires id"),
        (["state", "a", "b"], "unexpected argument"),
        (["create", "--bundle"], "flag needs an argument: --bundle"),
        (["update", "--pids-limit", "many", "c"], "invalid value 'many'"),
        (["--debug=maybe", "state", "x"], "invalid boolean"),
        (["ps", "-f", "yaml", "c"], "invalid choice 'yaml'"),
    ],
)
def test_bad_command_lines_are_refused_by_name(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args(argv)


def test_spec_template_mounts_what_runc_spec_mounts_and_what_the_daemon_mounts(
    tmp_path,
) -> None:
    """`dockyard-runtime spec` and the daemon's containers share one mount list; it has
    every mount `runc spec` writes (where runc is installed), with at least its options."""
    from dockyard.runtime.spec import RunSpec

    ours = default_spec()["mounts"]
    daemon = RunSpec(["true"], [], "h", ["/l"], "/u", "/w").to_oci("c")["mounts"]
    assert ours == [m for m in daemon if m["type"] != "bind"]
    assert {m["destination"] for m in ours} >= {"/proc", "/dev", "/sys/fs/cgroup", "/dev/shm"}
    runc = shutil.which("runc")
    if runc is None:
        return
    subprocess.run([runc, "spec"], cwd=tmp_path, check=True)
    theirs = json.loads((tmp_path / "config.json").read_text())["mounts"]

    def options(m: dict) -> set[str]:
        return {o for o in m.get("options", []) if not o.startswith("size=") and o != "relatime"}

    assert {m["destination"]: m["type"] for m in ours} == {
        m["destination"]: m["type"] for m in theirs
    }
    by_dest = {m["destination"]: m for m in ours}
    for m in theirs:
        assert options(by_dest[m["destination"]]) >= options(m), m["destination"]
