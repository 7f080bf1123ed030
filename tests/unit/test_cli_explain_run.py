"""`dockyard explain run` removes the container it made, also when the explain fails."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.cli import context as cli_context
from dockyard.cli.commands import explain
from dockyard.client.errors import APIError


class _Answer:
    def __init__(self, body: Any) -> None:
        self.body = body

    def json(self) -> Any:
        return self.body

    def read(self) -> bytes:
        return b""


class _Client:
    """The daemon's side of one explain run: GET explain answers `explain`."""

    def __init__(self, explain: Any) -> None:
        self.explain = explain
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, query: Any = None, **_: Any) -> _Answer:
        self.calls.append((method, path, query))
        if method == "GET" and isinstance(self.explain, Exception):
            raise self.explain
        return _Answer(self.explain if method == "GET" else None)


def _run(monkeypatch: pytest.MonkeyPatch, client: _Client) -> None:
    ctx = cli_context.Context.__new__(cli_context.Context)
    ctx._client = client  # type: ignore[assignment]
    monkeypatch.setattr(explain, "_create", lambda ctx, argv: "c0ffee" * 10)
    explain.execute(ctx, {}, ["run", "busybox", "true"])


def test_the_container_goes_after_its_script_is_printed(monkeypatch, capsys) -> None:
    client = _Client({"Script": "#!/bin/sh\n"})
    _run(monkeypatch, client)
    assert capsys.readouterr().out == "#!/bin/sh\n"
    get, delete = client.calls
    assert get[0] == "GET" and get[2] == {"own_bundle": "1"}
    assert delete == ("DELETE", "/containers/" + "c0ffee" * 10, {"force": "1", "v": "1"})


def test_the_container_goes_when_the_explain_fails(monkeypatch, capsys) -> None:
    client = _Client(APIError(500, "the explain broke"))
    with pytest.raises(cli_context.CLIError, match="the explain broke"):
        _run(monkeypatch, client)
    assert capsys.readouterr().out == ""
    assert [c[0] for c in client.calls] == ["GET", "DELETE"]
