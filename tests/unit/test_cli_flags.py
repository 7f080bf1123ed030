"""docker (pflag) style option parsing, as users type it."""

from __future__ import annotations

import pytest

from dockyard.cli.commands import ps, run
from dockyard.cli.flags import Command, FlagError, HelpRequested, Opt, UsageError, check_args, parse
from dockyard.cli.main import main


def test_combined_short_flags_and_stop_at_image():
    opts, args = parse(run.COMMAND, ["-it", "--rm", "busybox", "sh", "-c", "ls -l", "--rm"])
    assert opts["interactive"] and opts["tty"] and opts["rm"]
    assert args == ["busybox", "sh", "-c", "ls -l", "--rm"]


def test_value_forms():
    opts, args = parse(
        run.COMMAND,
        ["--env=A=B", "-e", "C=D", "-eE=F", "-e=G=H", "--name", "x", "-p80:80", "img"],
    )
    assert opts["env"] == ["A=B", "C=D", "E=F", "G=H"]
    assert opts["name"] == "x"
    assert opts["publish"] == ["80:80"]
    assert args == ["img"]


def test_short_flag_with_value_ends_the_cluster():
    opts, args = parse(run.COMMAND, ["-dp", "8080:80", "nginx"])
    assert opts["detach"] and opts["publish"] == ["8080:80"] and args == ["nginx"]


def test_double_dash_ends_options():
    opts, args = parse(run.COMMAND, ["--", "-img"])
    assert args == ["-img"]


def test_bool_with_explicit_value():
    opts, _ = parse(run.COMMAND, ["--sig-proxy=false", "--rm=true", "img"])
    assert opts["sig_proxy"] is False and opts["rm"] is True
    with pytest.raises(FlagError, match='invalid argument "maybe" for "--rm" flag'):
        parse(run.COMMAND, ["--rm=maybe", "img"])


def test_interspersed_for_other_verbs():
    cmd = Command("x", "", "", [Opt("force", "f")])
    opts, args = parse(cmd, ["a", "-f", "b"])
    assert opts["force"] and args == ["a", "b"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--foo"], "unknown flag: --foo"),
        (["-z"], "unknown shorthand flag: 'z' in -z"),
        (["--name"], "flag needs an argument: --name"),
        (["-n", "abc"], 'invalid argument "abc" for "-n, --last" flag'),
    ],
)
def test_flag_errors(argv, message):
    cmd = Command("x", "", "", [Opt("name", kind="string"), Opt("last", "n", kind="int")])
    with pytest.raises(FlagError, match=message.replace("(", r"\(")):
        parse(cmd, argv)


def test_help_flags():
    with pytest.raises(HelpRequested):
        parse(ps.COMMAND, ["--help"])
    with pytest.raises(HelpRequested):
        parse(ps.COMMAND, ["-h"])
    # for run, -h is --hostname
    opts, _ = parse(run.COMMAND, ["-h", "box", "img"])
    assert opts["hostname"] == "box"


def test_arg_count_messages():
    with pytest.raises(UsageError, match="'dockyard run' requires at least 1 argument"):
        check_args(run.COMMAND, [])
    with pytest.raises(UsageError, match="'dockyard ps' accepts no arguments"):
        check_args(ps.COMMAND, ["x"])


def test_unknown_flag_line_and_exit_code(capsys):
    assert main(["run", "--foo", "busybox"]) == 125
    assert capsys.readouterr().err == "unknown flag: --foo\nSee 'dockyard run --help'.\n"


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 1
    assert capsys.readouterr().err.startswith("dockyard: unknown command: dockyard frobnicate\n")


def test_missing_argument_exits_1(capsys):
    assert main(["rm"]) == 1
    assert capsys.readouterr().err.startswith(
        "dockyard: 'dockyard rm' requires at least 1 argument"
    )


def test_help_output(capsys):
    assert main(["ps", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage:  dockyard ps [OPTIONS]\n\nList containers\n")
    assert "  -a, --all             Show all containers (default shows just running)\n" in out


def test_management_alias_runs_the_same_verb(capsys):
    assert main(["container", "ls", "--help"]) == 0
    assert capsys.readouterr().out.startswith("Usage:  dockyard container ls [OPTIONS]")


@pytest.mark.parametrize("verb", ["ps", "rm", "logs", "stop", "kill", "wait", "tag", "import"])
def test_help_is_dockers_word_for_word(verb, capsys):
    """Same options, wording and pflag wrapping as the real docker CLI (when installed)."""
    import shutil
    import subprocess

    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI not installed")
    expected = subprocess.run([docker, verb, "--help"], capture_output=True, text=True).stdout
    assert main([verb, "--help"]) == 0
    assert capsys.readouterr().out.replace("dockyard", "docker") == expected
