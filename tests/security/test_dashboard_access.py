"""The dashboard's listener guards a root-equivalent API: nothing gets through it
without the token, from a page of another origin, or under another Host name (DNS
rebinding), and the daemon keeps serving after each refusal."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket

import pytest
from tests.dashboard_daemon import Dashboard, dashboard_daemon

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def ui() -> Dashboard:
    yield from dashboard_daemon()


def request(
    ui: Dashboard,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def authed(ui: Dashboard, **more: str) -> dict[str, str]:
    return {"Cookie": ui.cookie, **more}


def running(ui: Dashboard, name: str) -> bool:
    state = ui.daemon.request("GET", f"/containers/{name}/json").json()["State"]
    return bool(state["Running"])


@pytest.fixture
def sleeper(ui: Dashboard, unique) -> str:
    name = unique("guarded")
    r = ui.daemon.dockyard("run", "-d", "--name", name, "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    yield name
    ui.daemon.dockyard("rm", "-f", name)


def test_the_page_and_the_api_need_the_token(ui: Dashboard) -> None:
    for path in ("/", "/static/app.js", "/api/containers/json", "/api/version"):
        status, _, body = request(ui, "GET", path)
        assert status == 401, path
        assert b"<html" not in body and b"Platform" not in body
        assert b"token" in body  # says what is missing


def test_a_wrong_token_is_refused_in_the_url_and_in_the_cookie(ui: Dashboard) -> None:
    wrong = ("0" if ui.token[0] != "0" else "1") + ui.token[1:]
    assert request(ui, "GET", f"/?token={wrong}")[0] == 401
    assert request(ui, "GET", "/?token=")[0] == 401
    assert request(ui, "GET", f"/api/_ping?token={ui.token[:-1]}")[0] == 401
    cookie = {"Cookie": f"dockyard-ui-{ui.port}={wrong}"}
    assert request(ui, "GET", "/api/_ping", cookie)[0] == 401
    # a cookie of another port's dashboard is not this one's
    assert request(ui, "GET", "/api/_ping", {"Cookie": f"dockyard-ui-1={ui.token}"})[0] == 401
    # garbage in the Cookie header is no token, and no crash
    assert request(ui, "GET", "/api/_ping", {"Cookie": '";;==;x="\\'})[0] == 401


def test_the_logged_url_sets_a_strict_http_only_cookie_and_drops_the_token(ui: Dashboard) -> None:
    status, headers, _ = request(ui, "GET", f"/?token={ui.token}")
    assert status == 303
    assert headers["location"] == "/"  # the token leaves the address bar
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"dockyard-ui-{ui.port}={ui.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, headers, body = request(ui, "GET", "/", authed(ui))
    assert status == 200 and b"<title>Dockyard</title>" in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    status, _, body = request(ui, "GET", "/api/containers/json?all=1", authed(ui))
    assert status == 200 and isinstance(json.loads(body), list)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",  # a DNS-rebinding page's own name, resolving to 127.0.0.1
        "evil.example:{port}",
        "127.0.0.1",  # no port: not this listener's Host
        "127.0.0.1:1",
        "127.0.0.2:{port}",
    ],
)
def test_a_host_that_is_not_the_listeners_is_refused(ui: Dashboard, host: str) -> None:
    status, headers, body = request(
        ui, "GET", "/api/containers/json", authed(ui, Host=host.format(port=ui.port))
    )
    assert status == 403
    assert b"Host" in body
    assert "access-control-allow-origin" not in headers


def test_a_request_without_any_host_is_refused(ui: Dashboard) -> None:
    with socket.create_connection(("127.0.0.1", ui.port), timeout=10) as s:
        s.sendall(f"GET /api/_ping HTTP/1.0\r\nCookie: {ui.cookie}\r\n\r\n".encode())
        answer = s.recv(4096)
    assert answer.split(b"\r\n")[0].endswith(b" 403 Forbidden")


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        "http://127.0.0.1:1",
        "https://127.0.0.1:{port}",
        "http://localhost.evil.example:{port}",
    ],
)
def test_a_foreign_origin_cannot_drive_the_api(ui: Dashboard, sleeper: str, origin: str) -> None:
    """CSRF: the browser would attach the cookie to a cross-site POST; the Origin
    it must send gives the page away, and the container keeps running."""
    hdrs = authed(ui, Origin=origin.format(port=ui.port))
    status, headers, body = request(ui, "POST", f"/api/containers/{sleeper}/stop?t=0", hdrs)
    assert status == 403 and b"Origin" in body
    assert "access-control-allow-origin" not in headers
    assert running(ui, sleeper)
    # a CORS preflight gets no CORS answer either
    status, headers, _ = request(
        ui,
        "OPTIONS",
        f"/api/containers/{sleeper}/stop",
        {**hdrs, "Access-Control-Request-Method": "POST"},
    )
    assert status == 403
    assert not any(k.startswith("access-control-") for k in headers)


def test_the_dashboards_own_origin_may_act(ui: Dashboard, sleeper: str) -> None:
    hdrs = authed(ui, Origin=ui.origin)
    status, _, body = request(ui, "POST", f"/api/containers/{sleeper}/stop?t=0", hdrs)
    assert status == 204, body
    assert not running(ui, sleeper)


def _ws_handshake(ui: Dashboard, headers: dict[str, str], exec_id: str = "a" * 64) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET /terminal/exec/{exec_id} HTTP/1.1",
        f"Host: 127.0.0.1:{ui.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    with socket.create_connection(("127.0.0.1", ui.port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return s.recv(4096)


def test_the_terminal_websocket_is_guarded_too(ui: Dashboard) -> None:
    assert _ws_handshake(ui, {}).startswith(b"HTTP/1.1 401")
    assert _ws_handshake(ui, {"Cookie": ui.cookie, "Origin": "http://evil.example"}).startswith(
        b"HTTP/1.1 403"
    )
    # with both right, the socket opens and says the exec does not exist
    answer = _ws_handshake(ui, {"Cookie": ui.cookie, "Origin": ui.origin})
    assert answer.startswith(b"HTTP/1.1 101")
    # what the relay writes into its own request to the API is an exec id, nothing else
    for forged in ("a" * 63 + "%20HTTP/1.1%0d%0aX:", "..%2f..%2fcontainers%2fx%2fkill", "A" * 64):
        answer = _ws_handshake(ui, {"Cookie": ui.cookie, "Origin": ui.origin}, forged)
        assert answer.split(b"\r\n")[0].split()[1] in (b"400", b"404"), forged


def test_the_engine_socket_still_refuses_web_pages(ui: Dashboard) -> None:
    r = ui.daemon.request("GET", "/containers/json", headers={"Origin": ui.origin})
    assert r.status == 403


def test_the_daemon_keeps_serving_after_refusals(ui: Dashboard) -> None:
    for _ in range(20):
        request(ui, "GET", "/api/containers/json", {"Host": "evil.example"})
        request(ui, "GET", "/?token=nope")
    assert ui.daemon.request("GET", "/_ping").status == 200
    status, _, body = request(ui, "GET", "/api/_ping", authed(ui))
    assert (status, body) == (200, b"OK")
    assert ui.daemon.proc is not None and ui.daemon.proc.poll() is None


def test_a_taken_port_stops_the_daemon_with_one_clear_line(daemon_factory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        d = daemon_factory(extra_args=["--ui", f"127.0.0.1:{port}"], wait=False)
        assert d.proc is not None
        assert d.proc.wait(timeout=60) == 1
    log = d.log_path.read_text()
    assert f"cannot serve the dashboard on 127.0.0.1:{port}" in log
    assert "Traceback" not in log
