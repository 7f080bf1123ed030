"""The dashboard's access rules without a real daemon: which Host and Origin values
name the listener, how the token travels, what `--ui` accepts."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp import web
from fakes import async_test

from dockyard import daemon
from dockyard.dashboard.access import AccessPolicy, parse_address
from dockyard.dashboard.listener import make_dashboard_app
from dockyard.errors import DockyardError

TOKEN = "ab" * 24


def test_hosts_and_origins_name_the_listener_only() -> None:
    p = AccessPolicy("127.0.0.1", 8080, TOKEN)
    assert p.check_host("127.0.0.1:8080") is None
    assert p.check_host("LOCALHOST:8080") is None  # browsers resolve it themselves
    for bad in (
        None,
        "",
        "127.0.0.1",
        "127.0.0.1:8081",
        "evil.example:8080",
        "127.0.0.1:8080.evil",
    ):
        assert p.check_host(bad) is not None, bad
    assert p.check_origin(None) is None  # curl, or a same-origin GET
    assert p.check_origin("http://127.0.0.1:8080") is None
    for bad in (
        "null",
        "http://evil.example",
        "https://127.0.0.1:8080",
        "http://127.0.0.1:9999",
        "",
    ):
        assert p.check_origin(bad) is not None, bad
    v6 = AccessPolicy("::1", 8080, TOKEN)
    assert v6.check_host("[::1]:8080") is None and v6.check_host("::1:8080") is not None
    assert v6.url == f"http://[::1]:8080/?token={TOKEN}"
    remote = AccessPolicy("192.0.2.7", 8080, TOKEN)
    assert remote.check_host("localhost:8080") is not None  # not this machine's name there


def test_the_token_is_compared_whole_and_read_from_our_cookie_only() -> None:
    p = AccessPolicy("127.0.0.1", 8080, TOKEN)
    assert p.token_matches(TOKEN)
    assert not p.token_matches(TOKEN[:-1]) and not p.token_matches(None) and not p.token_matches("")
    assert p.cookie_token(f"a=b; dockyard-ui-8080={TOKEN}") == TOKEN
    assert p.cookie_token(f"dockyard-ui-9090={TOKEN}") is None
    assert p.cookie_token('";;=="') is None and p.cookie_token(None) is None
    header = p.set_cookie_header()
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Max-Age" not in header


def parse(*argv: str, config: dict | None = None) -> daemon.DaemonConfig:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "daemon.json")
        if config is not None:
            with open(path, "w") as f:
                json.dump(config, f)
        return daemon.parse_args(["--config-file", path, *argv])


def test_ui_flag_is_loopback_only_unless_told_otherwise() -> None:
    assert parse().ui == ""  # off by default
    assert parse("--ui", "127.0.0.1:8080").ui == "127.0.0.1:8080"
    assert parse(config={"ui": "[::1]:8080"}).ui == "[::1]:8080"
    with pytest.raises(DockyardError, match="not a loopback address"):
        parse("--ui", "192.0.2.7:8080")
    assert parse("--ui", "192.0.2.7:8080", "--ui-allow-remote").ui_allow_remote
    assert parse(config={"ui": "192.0.2.7:8080", "ui-allow-remote": True}).ui
    with pytest.raises(DockyardError, match="name the one address"):
        parse("--ui", "0.0.0.0:8080", "--ui-allow-remote")
    for bad in ("8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", ":8080"):
        with pytest.raises(DockyardError, match="ADDRESS:PORT"):
            parse("--ui", bad)
    with pytest.raises(DockyardError, match="needs --ui"):
        parse("--ui-allow-remote")
    with pytest.raises(DockyardError, match="both as a flag and in the configuration file: ui"):
        parse("--ui", "127.0.0.1:1", config={"ui": "127.0.0.1:2"})
    with pytest.raises(DockyardError, match="want true or false"):
        parse(config={"ui": "127.0.0.1:1", "ui-allow-remote": "yes"})
    assert parse_address("localhost:80") == ("localhost", 80)


async def _serve(port: int) -> web.AppRunner:
    # The API's routes hold a services object; /_ping never touches it.
    app = make_dashboard_app(object(), AccessPolicy("127.0.0.1", port, TOKEN))  # type: ignore[arg-type]
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@async_test
async def test_api_requests_are_forwarded_without_the_browsers_origin_and_cookie() -> None:
    port = _free_port()
    runner = await _serve(port)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
            own: dict[str, Any] = {"Cookie": f"dockyard-ui-{port}={TOKEN}", "Origin": base}
            # The API refuses any request with an Origin: the guard checked it and drops it.
            async with s.get(f"{base}/api/_ping", headers=own) as r:
                assert (r.status, await r.text()) == (200, "OK")
            async with s.get(f"{base}/api/_ping") as r:
                assert r.status == 401
            async with s.get(f"{base}/?token={TOKEN}", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/"
            # the package's Python files are not static files
            for path in ("/static/..%2faccess.py", "/static/%2e%2e/listener.py"):
                async with s.get(yarl.URL(base + path, encoded=True), headers=own) as r:
                    assert r.status in (403, 404), path
            async with s.get(f"{base}/static/app.js", headers=own) as r:
                assert r.status == 200 and r.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        await runner.cleanup()
