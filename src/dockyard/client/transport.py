"""HTTP/1.1 to the daemon over a unix or TCP socket, on plain sockets.

Every CLI verb imports this module, so it stays lean on purpose: http.client
would pull in the email package and ssl (tens of milliseconds of imports for
each `dockyard` invocation); the subset of HTTP the Engine API needs —
Content-Length, chunked bodies, read-until-close streams and the 101 upgrade
for attach — is small enough to speak directly. One connection per request:
connecting to a local socket costs microseconds.
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` would import enum and selectors
import errno
import os
import stat
import sys
import time

from dockyard import API_VERSION, __version__
from dockyard.client import jsonio
from dockyard.client.errors import APIError, DaemonUnreachable, ProtocolError
from dockyard.client.host import DEFAULT_HOST, DaemonHost, TLSSettings

TYPE_CHECKING = False  # avoids importing typing at run time (startup speed)
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator, Mapping
    from typing import IO, Any

    from dockyard.client.tls import TLSSocket

    QueryValue = str | int | bool | None | list[str]

USER_AGENT = f"Dockyard-Client/{__version__} (linux)"
LOG_FILE = "/var/log/dockyard.log"
AUTOSTART_TIMEOUT = 15.0
CHUNK = 65536
UPLOAD_CHUNK = 1 << 20

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PATH_SAFE = _UNRESERVED | frozenset(b"/:@!$&'()*+,;=")
_REASONS = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error"}


def _quote(text: str, safe: frozenset[int] = _UNRESERVED) -> str:
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in text.encode("utf-8"))


def encode_query(query: Mapping[str, QueryValue] | None) -> str:
    """Docker-style query: booleans as 1/0, None dropped, lists repeated."""
    if not query:
        return ""
    pairs: list[str] = []
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, bool):
            values = ["1" if value else "0"]
        elif isinstance(value, list):
            values = [str(v) for v in value]
        else:
            values = [str(value)]
        pairs.extend(f"{_quote(key)}={_quote(v)}" for v in values)
    return "&".join(pairs)


def encode_filters(filters: Mapping[str, list[str]]) -> str:
    """The docker CLI's filter encoding: {"key": {"value": true}}."""
    return jsonio.dumps({k: {v: True for v in vs} for k, vs in filters.items()})


class _Reader:
    """Buffered reads from a socket."""

    def __init__(self, sock: socket.socket, initial: bytes = b"") -> None:
        self.sock = sock
        self.buf = initial

    def fill(self) -> bool:
        try:
            data = self.sock.recv(CHUNK)
        except ConnectionResetError:
            data = b""
        if not data:
            return False
        self.buf += data
        return True

    def readline(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self.fill():
                raise ProtocolError("the daemon closed the connection mid-response")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def take(self, limit: int) -> bytes:
        """Up to `limit` bytes, waiting for at most one recv."""
        if not self.buf and not self.fill():
            return b""
        data, self.buf = self.buf[:limit], self.buf[limit:]
        return data


def _read_head(reader: _Reader) -> tuple[int, dict[str, str]]:
    while b"\r\n\r\n" not in reader.buf:
        if len(reader.buf) > 65536:
            raise ProtocolError("response header from the daemon is too large")
        if not reader.fill():
            raise ProtocolError("the daemon closed the connection before answering")
    head, _, reader.buf = reader.buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise ProtocolError(f"malformed status line from the daemon: {lines[0]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


class Response:
    """A daemon response whose body may still be streaming."""

    def __init__(
        self,
        sock: socket.socket,
        reader: _Reader,
        status: int,
        headers: dict[str, str],
        method: str,
    ) -> None:
        self.sock = sock
        self._reader = reader
        self.status = status
        self.headers = headers
        self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        self._remaining = -1  # -1: until close (or chunked)
        self._chunk_left = 0
        self._done = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        if not self._chunked and "content-length" in headers:
            try:
                self._remaining = int(headers["content-length"])
            except ValueError:
                raise ProtocolError("bad Content-Length from the daemon") from None
            if self._remaining == 0:
                self._done = True

    def read1(self, size: int = CHUNK) -> bytes:
        """The next bytes of the body as soon as any arrive; b'' at the end."""
        if self._done:
            return b""
        if self._chunked:
            return self._read_chunk(size)
        want = size if self._remaining < 0 else min(size, self._remaining)
        data = self._reader.take(want)
        if not data:
            if self._remaining > 0:
                raise ProtocolError("the daemon closed the connection mid-response")
            self._done = True
            return b""
        if self._remaining > 0:
            self._remaining -= len(data)
            if self._remaining == 0:
                self._done = True
        return data

    def _read_chunk(self, size: int) -> bytes:
        reader = self._reader
        if self._chunk_left == 0:
            line = reader.readline()
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk header from the daemon: {line[:40]!r}") from None
            if self._chunk_left == 0:
                # trailers end with an empty line; the daemon may also just close
                try:
                    while reader.readline():
                        pass
                except ProtocolError:
                    pass
                self._done = True
                return b""
        data = reader.take(min(size, self._chunk_left))
        if not data:
            raise ProtocolError("the daemon closed the connection mid-response")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            reader.readline()  # the CRLF after each chunk
        return data

    def read(self) -> bytes:
        parts: list[bytes] = []
        try:
            while True:
                data = self.read1()
                if not data:
                    break
                parts.append(data)
        finally:
            self.close()
        return b"".join(parts)

    def json(self) -> Any:
        body = self.read()
        if not body.strip():
            return None
        try:
            return jsonio.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ProtocolError(f"the daemon sent invalid JSON: {body[:80]!r}") from None

    def iter_chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """Yield bytes as soon as the daemon sends them (no waiting for full buffers)."""
        try:
            while True:
                data = self.read1(size)
                if not data:
                    return
                yield data
        finally:
            self.close()

    def iter_json(self) -> Iterator[Any]:
        """Newline-delimited (or concatenated) JSON objects, as progress streams send them."""
        buf = ""
        for chunk in self.iter_chunks():
            buf += chunk.decode("utf-8", "replace")
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    obj, end = jsonio.raw_decode(buf)
                except ValueError:
                    break
                buf = buf[end:]
                yield obj

    def close(self) -> None:
        self._done = True
        try:
            self.sock.close()
        except OSError:
            pass


class HijackedConnection:
    """A socket the daemon upgraded to a raw stream (attach, exec start)."""

    def __init__(self, sock: socket.socket, initial: bytes, content_type: str) -> None:
        self.sock = sock
        self._initial = initial
        self.content_type = content_type

    @property
    def multiplexed(self) -> bool:
        return "multiplexed-stream" in self.content_type

    def iter_chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        if self._initial:
            data, self._initial = self._initial, b""
            yield data
        while True:
            try:
                chunk = self.sock.recv(size)
            except OSError:
                return
            if not chunk:
                return
            yield chunk

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: tells the daemon stdin ended while output keeps flowing."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close_both(self) -> None:
        """Shut the stream in both directions: wakes a reader blocked in recv."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _error_message(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data = jsonio.loads(text)
    except ValueError:
        return text or _REASONS.get(status, f"status {status}")
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])
    return text


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return (0,)


def _too_new(message: str) -> str | None:
    """The daemon's maximum from 'client version X is too new. Maximum supported API version is Y'."""
    lower = message.lower()
    if "is too new" not in lower or "api version is" not in lower:
        return None
    tail = message[lower.rindex("api version is") + len("api version is") :].strip()
    version = tail.split()[0].rstrip(".") if tail else ""
    return version if _version_tuple(version) > (0,) else None


class Client:
    """Talks to one daemon; negotiates the API version like the docker CLI."""

    def __init__(
        self,
        host: DaemonHost,
        version: str | None = None,
        autostart: bool = True,
        timeout: float | None = None,
        tls: TLSSettings | None = None,
    ) -> None:
        self.host = host
        # TLS applies to TCP only: the daemon serves its unix sockets in the clear.
        self.tls = tls if host.scheme == "tcp" else None
        # An explicit DOCKER_API_VERSION pins the version (docker does the same).
        pinned = version or os.environ.get("DOCKER_API_VERSION")
        self.version = pinned or API_VERSION
        self._negotiable = not pinned
        self.autostart = autostart and not host.explicit and host.url == DEFAULT_HOST
        self.timeout = timeout
        self._started_daemon = False

    # -- connections -------------------------------------------------------

    def _open(self) -> socket.socket | TLSSocket:
        try:
            return self._try_open()
        except OSError as exc:
            self._handle_connect_error(exc)
        try:
            return self._try_open()
        except OSError as exc:
            raise DaemonUnreachable(self.host.url, str(exc)) from None

    def _try_open(self) -> socket.socket | TLSSocket:
        if self.host.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(self.host.address)
            except OSError:
                sock.close()
                raise
            return sock
        sock = _tcp_connect(self.host.address, self.host.port, self.timeout)
        if self.tls is None:
            return sock
        from dockyard.client.tls import wrap

        return wrap(sock, self.tls, self.host.address)

    def _handle_connect_error(self, exc: OSError) -> None:
        """Auto-start the daemon for the default socket, else raise DaemonUnreachable."""
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise DaemonUnreachable(self.host.url, str(exc), permission=True) from None
        missing = exc.errno in (errno.ENOENT, errno.ECONNREFUSED)
        if not (self.autostart and missing and os.geteuid() == 0 and not self._started_daemon):
            raise DaemonUnreachable(self.host.url, str(exc)) from None
        self._started_daemon = True
        proc = start_daemon()
        if not wait_for_socket(self.host.address, AUTOSTART_TIMEOUT, proc):
            raise DaemonUnreachable(self.host.url, "daemon did not start") from None

    def _host_header(self) -> str:
        if self.host.scheme == "unix":
            return "api.moby.localhost"
        return f"{self.host.address}:{self.host.port}"

    def _url(
        self, path: str, query: Mapping[str, QueryValue] | None, versioned: bool = True
    ) -> str:
        qs = encode_query(query)
        # names can hold anything a user typed; '/' and ':' stay (image references)
        target = _quote(path, _PATH_SAFE) + (f"?{qs}" if qs else "")
        return f"/v{self.version}{target}" if versioned else target

    def _send(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        payload: bytes | IO[bytes] | None,
    ) -> tuple[socket.socket, _Reader, int, dict[str, str]]:
        sock = self._open()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header()}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        streaming = payload is not None and not isinstance(payload, bytes)
        # sendfile(2) only on a plain socket: a TLS one must encrypt what it sends.
        plain = type(sock) is socket.socket
        file_size = _regular_file_left(payload) if streaming and plain else None
        if isinstance(payload, bytes):
            lines.append(f"Content-Length: {len(payload)}")
        elif file_size is not None:
            lines.append(f"Content-Length: {file_size}")
        elif streaming:
            lines.append("Transfer-Encoding: chunked")
        elif method in ("POST", "PUT"):
            lines.append("Content-Length: 0")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        reader = _Reader(sock)
        try:
            if isinstance(payload, bytes):
                sock.sendall(head + payload)
            else:
                sock.sendall(head)
                if file_size is not None:
                    _send_file(sock, payload, file_size)  # type: ignore[arg-type]
                elif streaming:
                    _send_chunked(sock, payload)  # type: ignore[arg-type]
            status, resp_headers = _read_head(reader)
        except ProtocolError as exc:
            sock.close()
            if self.host.scheme == "tcp" and not reader.buf:
                raise ProtocolError(f"{exc.message} {self._tls_hint()}") from None
            raise
        except (BrokenPipeError, ConnectionResetError) as exc:
            sock.close()
            raise ProtocolError(f"connection to the daemon was lost: {exc}") from None
        except BaseException:
            sock.close()
            raise
        return sock, reader, status, resp_headers

    def _tls_hint(self) -> str:
        if self.tls is None:
            return "(does it require TLS? see --tlsverify)"
        if self.tls.certfile:
            return "(was the client certificate refused? it must be signed by the daemon's CA)"
        return "(does it require a client certificate? see --tlscert and --tlskey)"

    # -- requests ------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, QueryValue] | None = None,
        body: Any = None,
        data: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send a request; raise APIError for a status >= 400; the body is left to the caller.

        As docker's Go client (checkResponseErr): below 400 is no error, so a 304
        ("already stopped", "already started") makes `stop`/`start` succeed.

        `body` is JSON-encoded; `data` is sent raw (a file is streamed chunked).
        """
        hdrs = {"User-Agent": USER_AGENT}
        payload: bytes | IO[bytes] | None = data
        if body is not None:
            payload = jsonio.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        for attempt in range(2):
            sock, reader, status, resp_headers = self._send(
                method, self._url(path, query), hdrs, payload
            )
            resp = Response(sock, reader, status, resp_headers, method)
            if 200 <= status < 400:
                return resp
            message = _error_message(status, resp.read())
            if attempt == 0 and self._downgrade(status, message):
                if payload is not None and not isinstance(payload, bytes):
                    try:
                        payload.seek(0)
                    except (OSError, AttributeError, ValueError):
                        raise APIError(status, message) from None
                continue
            raise APIError(status, message)
        raise AssertionError("unreachable")

    def _downgrade(self, status: int, message: str) -> bool:
        """After 'client version X is too new', use the daemon's version and retry."""
        if status != 400 or not self._negotiable:
            return False
        version = _too_new(message)
        if version is None:
            return False
        self.version = version
        self._negotiable = False
        return True

    def get(self, path: str, query: Mapping[str, QueryValue] | None = None) -> Any:
        return self.request("GET", path, query).json()

    def post(
        self, path: str, query: Mapping[str, QueryValue] | None = None, body: Any = None
    ) -> Any:
        return self.request("POST", path, query, body=body).json()

    def delete(self, path: str, query: Mapping[str, QueryValue] | None = None) -> Any:
        return self.request("DELETE", path, query).json()

    def ping(self) -> dict[str, str]:
        """GET /_ping (unversioned); returns the response headers, lower-cased."""
        sock, reader, status, headers = self._send(
            "GET", "/_ping", {"User-Agent": USER_AGENT}, None
        )
        Response(sock, reader, status, headers, "GET").read()
        return headers

    def negotiate(self) -> str:
        """Explicit negotiation via /_ping, for callers that want it up front."""
        if self._negotiable:
            api = self.ping().get("api-version")
            if api and _version_tuple(api) < _version_tuple(self.version):
                self.version = api
            self._negotiable = False
        return self.version

    # -- hijack ------------------------------------------------------------

    def hijack(
        self, path: str, query: Mapping[str, QueryValue] | None = None, body: Any = None
    ) -> HijackedConnection:
        """POST with Connection: Upgrade; on 101 (or 200) the socket becomes the stream.

        `body` (exec start's) is sent as JSON."""
        hdrs = {
            "User-Agent": USER_AGENT,
            "Content-Type": "text/plain" if body is None else "application/json",
            "Connection": "Upgrade",
            "Upgrade": "tcp",
        }
        payload = None if body is None else jsonio.dumps(body).encode()
        for attempt in range(2):
            sock, reader, status, headers = self._send(
                "POST", self._url(path, query), hdrs, payload
            )
            if status in (101, 200):
                return HijackedConnection(sock, reader.buf, headers.get("content-type", ""))
            resp = Response(sock, reader, status, headers, "POST")
            message = _error_message(status, resp.read())
            if attempt == 0 and self._downgrade(status, message):
                continue
            raise APIError(status, message)
        raise AssertionError("unreachable")


def _tcp_connect(host: str, port: int, timeout: float | None) -> socket.socket:
    """socket.create_connection, on the C module: try each address in turn."""
    last: OSError | None = None
    for family, kind, proto, _name, addr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(addr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last or OSError(errno.EHOSTUNREACH, f"no address for {host}")


def _regular_file_left(payload: object) -> int | None:
    """Bytes left to send of a regular file (`load -i FILE`), None for a pipe."""
    try:
        fd = payload.fileno()  # type: ignore[attr-defined]
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(st.st_size - payload.tell(), 0)  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


def _send_file(sock: socket.socket, source: IO[bytes], size: int) -> None:
    """A regular file as the body, with its length: sendfile(2) copies it in the
    kernel (a 160 MB `load -i` never passes through this process)."""
    out, fd, offset, left = sock.fileno(), source.fileno(), source.tell(), size
    timeout = sock.gettimeout()
    sock.settimeout(None)  # sendfile needs a blocking socket
    try:
        while left:
            n = os.sendfile(out, fd, offset, min(left, 1 << 30))
            if not n:
                raise ProtocolError(
                    f"the file to send shrank while sent ({size - left} of {size} bytes)"
                )
            offset += n
            left -= n
    finally:
        sock.settimeout(timeout)


def _send_chunked(sock: socket.socket, source: IO[bytes]) -> None:
    read = getattr(source, "read1", source.read)
    while True:
        # 1 MiB chunks (`docker load` of a 160 MB image is 160 of them, not 2500),
        # the chunk framing sent around the block rather than copied onto it.
        block = read(UPLOAD_CHUNK)
        if not block:
            break
        sock.sendall(b"%x\r\n" % len(block))
        sock.sendall(block)
        sock.sendall(b"\r\n")
    sock.sendall(b"0\r\n\r\n")


def start_daemon() -> subprocess.Popen[bytes]:
    """Launch `python -m dockyard daemon` detached, its output appended to the log."""
    import subprocess

    sys.stderr.write(f"Starting the dockyard daemon in the background (log: {LOG_FILE})\n")
    sys.stderr.flush()
    with open(LOG_FILE, "ab") as log, open(os.devnull, "rb") as devnull:
        return subprocess.Popen(
            [sys.executable, "-m", "dockyard", "daemon"],
            stdin=devnull,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )


def wait_for_socket(path: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll until the socket accepts; give up early if the daemon process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            sock.close()
    return False
