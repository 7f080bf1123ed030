"""TLS to a daemon's TCP listener, as the docker CLI speaks it.

Imported only when TLS is in use: `ssl` costs several milliseconds to import, which
every plain `dockyard` command would otherwise pay.

The socket is wrapped with a memory-BIO `SSLObject` rather than `SSLSocket`
because attach needs a half-close: after stdin ends the client sends TLS's
close_notify (the daemon sees end of input) and goes on reading output.
`SSLSocket.shutdown()` drops the TLS layer and would read ciphertext after it.
"""

from __future__ import annotations

import _socket as socket
import ssl
import threading

from dockyard.client.errors import ProtocolError
from dockyard.client.host import TLSSettings

_CHUNK = 65536


class TLSFailure(ProtocolError):
    """The TLS handshake or a TLS record failed: a certificate refused, or not TLS at all."""


def client_context(settings: TLSSettings) -> ssl.SSLContext:
    """The docker CLI's choices: --tlsverify checks the daemon against the CA (and its
    name); --tls alone encrypts without checking; a client certificate when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if settings.verify:
            ctx.load_verify_locations(cafile=settings.cafile)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if settings.certfile and settings.keyfile:
            ctx.load_cert_chain(settings.certfile, settings.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise TLSFailure(f"could not load the TLS files: {exc}") from None
    return ctx


class TLSSocket:
    """The few socket methods the transport uses, over TLS."""

    def __init__(self, raw: socket.socket, ctx: ssl.SSLContext, server_hostname: str) -> None:
        self._raw = raw
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = ctx.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        self._closed_write = False
        # attach reads in one thread while another sends stdin: one TLS state, one lock
        # (never held across the blocking recv on the raw socket).
        self._lock = threading.Lock()
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if not self._feed():
                    raise TLSFailure(
                        "the daemon closed the connection during the TLS handshake "
                        "(does it listen with TLS?)"
                    ) from None
            except ssl.SSLError as exc:
                raise TLSFailure(f"TLS handshake with the daemon failed: {_reason(exc)}") from None
        self._flush()

    def _flush(self) -> None:
        # Called with the lock held (or before any other thread has the socket).
        data = self._out.read()
        if data:
            self._raw.sendall(data)

    def _feed(self) -> bool:
        data = self._raw.recv(_CHUNK)
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    def recv(self, size: int) -> bytes:
        eof = False
        while True:
            try:
                with self._lock:
                    try:
                        return self._tls.read(size)
                    except ssl.SSLWantReadError:
                        if eof:
                            return b""
                        self._flush()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            except ssl.SSLError as exc:
                # TLS 1.3 reports a refused client certificate after the handshake.
                raise TLSFailure(f"the daemon refused the TLS session: {_reason(exc)}") from None
            eof = not self._feed()

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        with self._lock:
            while view:
                written = self._tls.write(view)
                view = view[written:]
                self._flush()

    def shutdown(self, how: int) -> None:
        with self._lock:
            if not self._closed_write:
                self._closed_write = True
                try:
                    self._tls.unwrap()  # sends close_notify; reading goes on
                except ssl.SSLError:
                    pass
                self._flush()
        if how == socket.SHUT_RDWR:
            self._raw.shutdown(how)

    def settimeout(self, timeout: float | None) -> None:
        self._raw.settimeout(timeout)

    def setsockopt(self, *args: int) -> None:
        self._raw.setsockopt(*args)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()


def _reason(exc: ssl.SSLError) -> str:
    return exc.reason.replace("_", " ").lower() if exc.reason else str(exc)


def wrap(raw: socket.socket, settings: TLSSettings, server_hostname: str) -> TLSSocket:
    try:
        return TLSSocket(raw, client_context(settings), server_hostname)
    except BaseException:
        raw.close()
        raise
