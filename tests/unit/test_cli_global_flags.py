"""docker's global flags that Dockyard parses are acted on or refused, never ignored."""

from __future__ import annotations

import pytest

from dockyard.cli.main import main

NO_DAEMON = "unix:///nonexistent/dockyard.sock"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch) -> None:
    for name in (
        "DOCKER_TLS_VERIFY",
        "DOCKER_TLS",
        "DOCKER_HOST",
        "DOCKYARD_HOST",
        "DOCKER_CERT_PATH",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--context", "remote", "ps"], 'context "remote" does not exist'),
        (
            ["--context", "default", "-H", NO_DAEMON, "ps"],
            "cannot specify both --host and --context",
        ),
        (["-l", "loud", "-H", NO_DAEMON, "ps"], "Unable to parse logging level: loud"),
    ],
)
def test_refused_with_one_line(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_log_level_debug_is_debug_mode(capsys) -> None:
    assert main(["-l", "debug", "-H", NO_DAEMON, "ps"]) == 1
    assert "Traceback" in capsys.readouterr().err  # -D's traceback for the failure


def test_config_dir_holds_the_tls_files(tmp_path, capsys) -> None:
    assert main(["--config", str(tmp_path), "-H", "tcp://127.0.0.1:9", "--tlsverify", "ps"]) == 1
    assert f"{tmp_path}/ca.pem" in capsys.readouterr().err
