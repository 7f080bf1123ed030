"""The plain-socket HTTP client: body framings, errors, hijack, TCP, version fallback."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

import pytest

from dockyard.client.errors import APIError, DaemonUnreachable
from dockyard.client.host import parse_host
from dockyard.client.transport import Client, encode_query


def serve_once(listener: socket.socket, answers: list[bytes], seen: list[bytes]) -> None:
    """Answer each connection with the next canned bytes, then close it."""

    def run() -> None:
        for answer in answers:
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                seen.append(data)
                conn.sendall(answer)

    threading.Thread(target=run, daemon=True).start()


@pytest.fixture
def unix_server(tmp_path) -> Callable[[list[bytes]], tuple[Client, list[bytes]]]:
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)

    def start(answers: list[bytes]) -> tuple[Client, list[bytes]]:
        seen: list[bytes] = []
        serve_once(listener, answers, seen)
        return Client(parse_host(f"unix://{path}")), seen

    yield start
    listener.close()


def test_chunked_body(unix_server):
    client, _ = unix_server(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[1, \r\n3\r\n2]\n\r\n0\r\n\r\n"
        ]
    )
    assert client.get("/x") == [1, 2]


def test_body_until_close_and_streaming_chunks(unix_server):
    client, _ = unix_server([b"HTTP/1.1 200 OK\r\n\r\nabc" + b"d" * 100000])
    resp = client.request("GET", "/logs")
    assert b"".join(resp.iter_chunks()) == b"abc" + b"d" * 100000


def test_no_content(unix_server):
    client, seen = unix_server([b"HTTP/1.1 204 No Content\r\n\r\n"])
    assert client.request("POST", "/containers/x/start").read() == b""
    assert b"Content-Length: 0\r\n" in seen[0]


def test_error_carries_status_and_message(unix_server):
    client, _ = unix_server(
        [b'HTTP/1.1 409 Conflict\r\nContent-Length: 27\r\n\r\n{"message": "name in use"}\n']
    )
    with pytest.raises(APIError) as err:
        client.post("/containers/create", body={})
    assert (err.value.status, err.value.message) == (409, "name in use")


def test_plain_text_error(unix_server):
    client, _ = unix_server([b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nboom"])
    with pytest.raises(APIError, match="boom"):
        client.get("/x")


def test_version_fallback_then_pinned(unix_server):
    too_new = b'{"message":"client version 1.50 is too new. Maximum supported API version is 1.41"}'
    client, seen = unix_server(
        [
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(too_new) + too_new,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        ]
    )
    assert client.get("/info") == {}
    assert seen[0].startswith(b"GET /v1.50/info ")
    assert seen[1].startswith(b"GET /v1.41/info ")
    assert client.version == "1.41"


def test_hijack_keeps_bytes_after_the_head(unix_server):
    client, seen = unix_server(
        [
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly bytes"
        ]
    )
    conn = client.hijack("/containers/x/attach", {"stream": True, "stdout": True})
    assert b"".join(conn.iter_chunks()) == b"early bytes"
    assert not conn.multiplexed
    head = seen[0].decode()
    assert head.startswith("POST /v1.50/containers/x/attach?stream=1&stdout=1 HTTP/1.1\r\n")
    assert "Connection: Upgrade\r\n" in head and "Upgrade: tcp\r\n" in head


def test_hijack_error(unix_server):
    body = b'{"message":"No such container: x"}'
    client, _ = unix_server(
        [b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(body) + body]
    )
    with pytest.raises(APIError, match="No such container: x"):
        client.hijack("/containers/x/attach")


def test_tcp_and_streamed_upload():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    got: list[bytes] = []

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while not data.endswith(b"0\r\n\r\n"):
                data += conn.recv(65536)
            got.append(data)
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 24\r\n\r\n{"status":"sha256:abc"}\n')

    threading.Thread(target=run, daemon=True).start()
    r, w = os.pipe()
    os.write(w, b"tar bytes")
    os.close(w)
    client = Client(parse_host(f"127.0.0.1:{port}"))
    with os.fdopen(r, "rb") as src:
        msgs = list(
            client.request("POST", "/images/create", {"fromSrc": "-"}, data=src).iter_json()
        )
    listener.close()
    assert msgs == [{"status": "sha256:abc"}]
    assert b"Transfer-Encoding: chunked\r\n" in got[0]
    assert got[0].endswith(b"\r\n\r\n9\r\ntar bytes\r\n0\r\n\r\n")
    assert f"Host: 127.0.0.1:{port}\r\n".encode() in got[0]


def test_unreachable_explicit_host_is_not_autostarted(tmp_path):
    client = Client(parse_host(f"unix://{tmp_path}/none.sock"))
    assert not client.autostart
    with pytest.raises(DaemonUnreachable, match="Is the dockyard daemon running"):
        client.get("/_ping")


def test_query_encoding():
    assert encode_query({"a": True, "b": False, "c": None, "d": ["x y", "z/é"]}) == (
        "a=1&b=0&d=x%20y&d=z%2F%C3%A9"
    )
