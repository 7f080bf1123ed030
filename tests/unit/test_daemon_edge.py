"""The daemon's edge: TLS settings, listener addresses and warnings, the data root's
modes, and the HTTP server's bounds on connections (no root, no real daemon)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import tempfile
import time

import pytest
from aiohttp import web
from fakes import async_test

from dockyard import daemon
from dockyard.api import server
from dockyard.errors import DockyardError


def parse(*argv: str, config: dict | None = None) -> daemon.DaemonConfig:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "daemon.json")
        if config is not None:
            with open(path, "w") as f:
                json.dump(config, f)
        return daemon.parse_args(["--config-file", path, *argv])


def test_tls_flags_as_dockerd(monkeypatch) -> None:
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.setenv("DOCKER_CERT_PATH", "/certs")
    cfg = parse("--tlsverify")
    assert cfg.use_tls and cfg.tlsverify
    assert (cfg.tlscacert, cfg.tlscert, cfg.tlskey) == (
        "/certs/ca.pem",
        "/certs/cert.pem",
        "/certs/key.pem",
    )
    assert parse("--tls=false").tls is False
    assert not parse("--tlsverify=false").use_tls
    assert parse().tls is None
    assert parse("--tls", "--tlskey", "/k.pem").tlskey == "/k.pem"
    with pytest.raises(DockyardError, match="--tlskey need --tls or --tlsverify"):
        parse("--tlskey", "/k.pem")


def test_tls_keys_in_daemon_json_and_conflicts_with_flags(monkeypatch) -> None:
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    cfg = parse(config={"tlsverify": True, "tlscert": "/c.pem", "tlskey": "/k.pem"})
    assert cfg.tlsverify and cfg.tlscert == "/c.pem"
    with pytest.raises(DockyardError, match="both as a flag and in the configuration file: tls"):
        parse("--tlsverify", config={"tlsverify": True})
    with pytest.raises(DockyardError, match="want true or false"):
        parse(config={"tls": "yes"})


@pytest.mark.parametrize(
    ("host", "tls", "want"),
    [
        ("tcp://10.0.0.1", False, ("10.0.0.1", 2375)),
        ("tcp://10.0.0.1", True, ("10.0.0.1", 2376)),
        ("tcp://10.0.0.1:4243", True, ("10.0.0.1", 4243)),
        ("127.0.0.1:4243", False, ("127.0.0.1", 4243)),
        ("tcp://[::1]", True, ("::1", 2376)),
    ],
)
def test_default_tcp_port_follows_tls(host: str, tls: bool, want: tuple[str, int]) -> None:
    lst = daemon.parse_host(host, tls)
    assert (lst.address, lst.port) == want


def test_loopback_is_told_apart() -> None:
    assert daemon.is_loopback("127.0.0.1") and daemon.is_loopback("::1")
    assert daemon.is_loopback("localhost")
    assert not daemon.is_loopback("0.0.0.0")
    assert not daemon.is_loopback("10.1.2.3")


def _warnings(cfg: daemon.DaemonConfig, address: str, monkeypatch) -> tuple[list[str], list[float]]:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(daemon.asyncio, "sleep", fake_sleep)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    daemon.log.addHandler(handler)
    try:
        asyncio.run(daemon._warn_unauthenticated(cfg, daemon.Listener("tcp", address, 2375)))
    finally:
        daemon.log.removeHandler(handler)
    return [r.getMessage() for r in records], slept


def test_remote_listener_without_tls_waits_like_dockerd(monkeypatch) -> None:
    lines, slept = _warnings(daemon.DaemonConfig(), "0.0.0.0", monkeypatch)
    assert lines[0].startswith("Binding to IP address without --tlsverify is insecure")
    assert any("Startup is intentionally being slowed down" in line for line in lines)
    assert slept == [daemon.INSECURE_REMOTE_DELAY]


def test_loopback_or_explicit_opt_out_only_warns(monkeypatch) -> None:
    lines, slept = _warnings(daemon.DaemonConfig(), "127.0.0.1", monkeypatch)
    assert len(lines) == 2 and slept == []
    lines, slept = _warnings(daemon.DaemonConfig(tls=False), "0.0.0.0", monkeypatch)
    assert len(lines) == 2 and slept == []


def test_go_style_log_line_carries_the_host_field() -> None:
    record = logging.LogRecord("d", logging.WARNING, "", 0, "Binding", None, None)
    record.fields = {"host": "tcp://0.0.0.0:2375"}
    line = daemon._GoStyleFormatter().format(record)
    assert line.endswith('level=warning msg="Binding" host="tcp://0.0.0.0:2375"')


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_private_data_root_closes_an_old_open_one(tmp_path) -> None:
    root = tmp_path / "root"
    (root / "layers" / "x" / "diff").mkdir(parents=True)
    (root / "containers").mkdir()
    root.chmod(0o711)
    os.chown(root, 65534, 65534)
    (root / "layers").chmod(0o755)
    daemon.private_data_root(str(root))
    st = root.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 0, 0)
    for sub in ("layers", "containers", "blobs", "run"):
        assert stat.S_IMODE((root / sub).stat().st_mode) == 0o700, sub


def test_connection_cap_leaves_room_for_the_daemons_own_files() -> None:
    assert server.connection_cap(20_000) == server.MAX_CONNECTIONS
    assert server.connection_cap(4096) == 4096 - 1024
    assert server.connection_cap(1024) == 768  # a hard limit it could not raise
    assert server.connection_cap(40) == 30
    assert server.connection_cap(-1) == server.MAX_CONNECTIONS  # RLIM_INFINITY


def test_accept_errors_make_one_line_not_a_traceback_each(caplog) -> None:
    loop = asyncio.new_event_loop()
    try:
        server._last_logged.clear()
        server.quiet_accept_errors(loop)
        handler = loop.get_exception_handler()
        assert handler is not None
        exc = OSError(24, "Too many open files")
        with caplog.at_level(logging.WARNING, logger="dockyard.api"):
            for _ in range(50):
                handler(
                    loop, {"message": "socket.accept() out of system resource", "exception": exc}
                )
    finally:
        loop.close()
    lines = [r for r in caplog.records if "accept() failed" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None


@async_test
async def test_a_full_server_drops_its_oldest_idle_connection_not_a_busy_one() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/_ping", _ok)
    runner = server.GuardedAppRunner(app, max_connections=3)
    await runner.setup()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.sock")
        site = web.UnixSite(runner, path)
        await site.start()
        try:
            busy = socket.socket(socket.AF_UNIX)
            busy.connect(path)
            busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.sleep(0.1)
            idle = []
            for _ in range(4):
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                idle.append(s)
                await asyncio.sleep(0.05)
            assert len(runner.server.connections) <= 3
            reply = await asyncio.to_thread(_get, path, "/_ping")
            assert reply.startswith(b"HTTP/1.1 200")
            release.set()
            busy.settimeout(5)
            assert b"done" in await asyncio.to_thread(busy.recv, 4096)
            for s in [busy, *idle]:
                s.close()
        finally:
            await runner.cleanup()


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="OK")


def _get(path: str, target: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data


@async_test
async def test_a_request_head_must_arrive_in_time() -> None:
    app = web.Application()
    runner = server.GuardedAppRunner(app, keepalive_timeout=0.5)
    await runner.setup()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.sock")
        site = web.UnixSite(runner, path)
        await site.start()
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.setblocking(False)
            start = time.monotonic()
            closed = False
            while time.monotonic() - start < 5 and not closed:
                try:
                    s.send(b"G")  # a byte at a time, never a whole head
                    closed = s.recv(10) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
                await asyncio.sleep(0.1)
            s.close()
            assert closed and time.monotonic() - start < 3
        finally:
            await runner.cleanup()


@async_test
async def test_a_full_server_drops_a_trickled_body_before_refusing_anyone() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    async def create(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_post("/create", create)
    runner = server.GuardedAppRunner(app, max_connections=2)
    await runner.setup()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.sock")
        site = web.UnixSite(runner, path)
        await site.start()
        try:
            busy = socket.socket(socket.AF_UNIX)
            busy.connect(path)
            busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            trickle = socket.socket(socket.AF_UNIX)
            trickle.connect(path)
            trickle.sendall(b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            await asyncio.sleep(0.2)
            reply = await asyncio.to_thread(_get, path, "/slow-not-found")
            assert reply.startswith(b"HTTP/1.1 404")  # answered: the trickle made room
            trickle.settimeout(5)
            assert await asyncio.to_thread(trickle.recv, 100) == b""
            release.set()
            busy.settimeout(5)
            assert b"done" in await asyncio.to_thread(busy.recv, 4096)
            busy.close()
            trickle.close()
        finally:
            await runner.cleanup()


@async_test
async def test_malformed_requests_are_answered_400_without_a_traceback_in_the_log(caplog) -> None:
    runner = server.GuardedAppRunner(web.Application())
    await runner.setup()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.sock")
        site = web.UnixSite(runner, path)
        await site.start()
        try:
            with caplog.at_level(logging.DEBUG):
                for head in (
                    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
                ):
                    reply = await asyncio.to_thread(_raw, path, head)
                    assert reply.startswith(b"HTTP/1.0 400") or reply.startswith(b"HTTP/1.1 4")
        finally:
            await runner.cleanup()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def _raw(path: str, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(data)
        return s.recv(200)
