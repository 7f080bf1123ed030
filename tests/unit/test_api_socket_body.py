"""api/socket_body: a load's body read straight from the connection, on a real
socket pair. What a client that stalls or goes away mid-body leaves the unpacker
with: the bytes it did send, then the end of the stream (a truncated archive,
which the unpacker refuses), never a thread blocked forever."""

from __future__ import annotations

import os
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from dockyard.api import socket_body
from dockyard.api.socket_body import SocketBody


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    server.setblocking(False)  # as aiohttp leaves its transport's socket
    yield server, client
    server.close()
    client.close()


def body(server: socket.socket, first: bytes, left: int) -> tuple[SocketBody, SimpleNamespace]:
    protocol = SimpleNamespace(rx_at=0.0)
    return SocketBody(None, os.dup(server.fileno()), first, left, protocol), protocol  # type: ignore[arg-type]


def read_all(stream: SocketBody) -> bytes:
    got = bytearray()
    buf = bytearray(4096)
    while n := stream.readinto(memoryview(buf)):
        got += buf[:n]
    return bytes(got)


def test_what_aiohttp_buffered_comes_first_then_the_socket_up_to_the_length(pair):
    server, client = pair
    stream, protocol = body(server, b"head-", 10)
    client.sendall(b"0123456789" + b"not part of this body")
    assert read_all(stream) == b"head-0123456789"
    assert protocol.rx_at > 0  # the server's stall clock was told the body moves
    stream.close()


def test_a_client_that_stalls_ends_the_stream_after_the_body_timeout(pair, monkeypatch):
    monkeypatch.setattr(socket_body, "BODY_TIMEOUT", 0.3)
    server, client = pair
    stream, _ = body(server, b"", 1000)
    client.sendall(b"x" * 100)  # then nothing more, connection left open
    started = time.monotonic()
    assert read_all(stream) == b"x" * 100
    waited = time.monotonic() - started
    assert 0.25 <= waited < 5, waited
    stream.close()


def test_a_slow_client_is_not_a_stalled_one(pair, monkeypatch):
    """Each arrival restarts the wait: only silence for BODY_TIMEOUT ends the body."""
    monkeypatch.setattr(socket_body, "BODY_TIMEOUT", 0.5)

    def trickle() -> None:
        for _ in range(6):
            time.sleep(0.2)  # 1.2 s in all, more than the timeout, never silent that long
            client.sendall(b"y" * 10)

    server, client = pair
    stream, _ = body(server, b"", 60)
    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        assert read_all(stream) == b"y" * 60
    finally:
        sender.join()
    stream.close()


def test_a_client_that_goes_away_ends_the_stream_at_once(pair):
    server, client = pair
    stream, _ = body(server, b"", 1000)
    client.sendall(b"z" * 10)
    client.shutdown(socket.SHUT_WR)
    started = time.monotonic()
    assert read_all(stream) == b"z" * 10
    assert time.monotonic() - started < 1
    stream.close()
    stream.close()  # twice is harmless (error paths close too)
