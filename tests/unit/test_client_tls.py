"""The client's TLS: docker's settings rules, and a half-close that keeps reading."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from dockyard.client.host import HostError, parse_host, select_host, tls_settings
from tlscerts import CA  # needs `cryptography` (the test extra)


def test_no_tls_unless_asked() -> None:
    assert tls_settings(False, None, env={}) is None
    assert tls_settings(False, None, env={"DOCKER_TLS_VERIFY": ""}) is None


def test_docker_tls_verify_and_cert_path(tmp_path: Path) -> None:
    CA().issue(tmp_path, "client", server=False)
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}
    s = tls_settings(False, None, env=env)
    assert s is not None and s.verify
    assert (s.cafile, s.certfile, s.keyfile) == (
        f"{tmp_path}/ca.pem",
        f"{tmp_path}/cert.pem",
        f"{tmp_path}/key.pem",
    )
    # --tlsverify=false on the command line beats the environment: TLS without checks
    assert tls_settings(True, False, env=env).verify is False  # type: ignore[union-attr]


def test_missing_ca_is_an_error_and_missing_default_client_cert_is_not(tmp_path: Path) -> None:
    env = {"DOCKER_CERT_PATH": str(tmp_path)}
    with pytest.raises(HostError, match="could not read CA certificate"):
        tls_settings(False, True, env=env)
    (tmp_path / "ca.pem").write_bytes(CA().pem)
    s = tls_settings(False, True, env=env)
    assert s is not None and s.certfile == "" and s.keyfile == ""
    with pytest.raises(HostError, match="both a certificate"):
        tls_settings(False, True, cert=str(tmp_path / "ca.pem"), env=env)


def test_tls_default_port_is_2376() -> None:
    assert parse_host("tcp://example.test", tls=True).port == 2376
    assert parse_host("tcp://example.test").port == 2375
    assert select_host("tcp://example.test", env={}, tls=True).port == 2376


def _server(ca: CA, tmp_path: Path) -> tuple[socket.socket, ssl.SSLContext]:
    certs = ca.issue(tmp_path / "server", "localhost", server=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.cert, certs.key)
    ctx.load_verify_locations(certs.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    return listener, ctx


def test_half_close_sends_close_notify_and_keeps_reading(tmp_path: Path) -> None:
    """stdin ends (close_notify), the output still arrives: attach over TLS."""
    from dockyard.client.tls import wrap

    ca = CA()
    listener, ctx = _server(ca, tmp_path)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            data = b""
            while chunk := tls.recv(4096):  # until the client's close_notify
                data += chunk
            got.append(data)
            tls.sendall(b"output after stdin ended")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = ca.issue(tmp_path / "client", "client", server=False)
    settings = tls_settings(False, True, env={"DOCKER_CERT_PATH": str(client.path)})
    assert settings is not None
    raw = socket.create_connection(listener.getsockname(), timeout=10)
    sock = wrap(raw, settings, "127.0.0.1")
    sock.sendall(b"stdin bytes")
    sock.shutdown(socket.SHUT_WR)
    out = b""
    while chunk := sock.recv(4096):
        out += chunk
    sock.close()
    t.join(10)
    listener.close()
    assert got == [b"stdin bytes"]
    assert out == b"output after stdin ended"


def test_a_server_from_another_ca_is_refused(tmp_path: Path) -> None:
    from dockyard.client.tls import TLSFailure, wrap

    listener, ctx = _server(CA("other"), tmp_path)
    threading.Thread(target=lambda: _accept_quietly(listener, ctx), daemon=True).start()
    client = CA().issue(tmp_path / "client", "client", server=False)
    settings = tls_settings(False, True, env={"DOCKER_CERT_PATH": str(client.path)})
    assert settings is not None
    raw = socket.create_connection(listener.getsockname(), timeout=10)
    with pytest.raises(TLSFailure, match="certificate verify failed"):
        wrap(raw, settings, "127.0.0.1")
    listener.close()


def _accept_quietly(listener: socket.socket, ctx: ssl.SSLContext) -> None:
    conn, _ = listener.accept()
    try:
        ctx.wrap_socket(conn, server_side=True).close()
    except (ssl.SSLError, OSError):
        conn.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-H", "unix:///tmp/none.sock", "--tlsverify", "ps"], "TLS applies to tcp:// hosts"),
        (["-H", "tcp://127.0.0.1:1", "--tlscert", "/c.pem", "ps"], "need --tls or --tlsverify"),
    ],
)
def test_cli_tls_flags_it_cannot_honour_are_refused(argv, message, capsys, monkeypatch) -> None:
    from dockyard.cli.main import main

    for name in ("DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_HOST", "DOCKYARD_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert main(argv) == 1
    assert message in capsys.readouterr().err
