"""HTTP to the daemon over a unix or TCP socket, with the stdlib only.

The CLI imports this on every verb, so it stays small: http.client, socket
and json. One connection per request keeps the code simple; connecting to a
local socket costs microseconds.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from dockyard import API_VERSION, __version__
from dockyard.client.errors import APIError, DaemonUnreachable, ProtocolError
from dockyard.client.host import DEFAULT_HOST, DaemonHost

if TYPE_CHECKING:
    import subprocess

USER_AGENT = f"Dockyard-Client/{__version__} (linux)"
LOG_FILE = "/var/log/dockyard.log"
AUTOSTART_TIMEOUT = 15.0
_TOO_NEW = re.compile(r"client version (\S+) is too new.*?API version is (\d+\.\d+)", re.I)

QueryValue = str | int | bool | None | list[str]


def encode_query(query: Mapping[str, QueryValue] | None) -> str:
    """Docker-style query: booleans as 1/0, None dropped, lists repeated."""
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, "1" if value else "0"))
        elif isinstance(value, list):
            pairs.extend((key, str(v)) for v in value)
        else:
            pairs.append((key, str(value)))
    return urlencode(pairs, quote_via=quote) if pairs else ""


def encode_filters(filters: Mapping[str, list[str]]) -> str:
    """The docker CLI's filter encoding: {"key": {"value": true}}."""
    return json.dumps({k: {v: True for v in vs} for k, vs in filters.items()})


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if self.timeout is not None:
                sock.settimeout(self.timeout)
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Response:
    """A daemon response whose body may still be streaming."""

    def __init__(self, conn: http.client.HTTPConnection, raw: http.client.HTTPResponse) -> None:
        self._conn = conn
        self.raw = raw
        self.status = raw.status
        self.headers = raw.headers

    def read(self) -> bytes:
        try:
            return self.raw.read()
        finally:
            self.close()

    def json(self) -> Any:
        body = self.read()
        if not body.strip():
            return None
        return json.loads(body)

    def iter_chunks(self, size: int = 65536) -> Iterator[bytes]:
        """Yield bytes as soon as the daemon sends them (no waiting for full buffers)."""
        try:
            while True:
                chunk = self.raw.read1(size)
                if not chunk:
                    return
                yield chunk
        except http.client.IncompleteRead as exc:
            if exc.partial:
                yield exc.partial
        finally:
            self.close()

    def iter_json(self) -> Iterator[Any]:
        """Newline-delimited (or concatenated) JSON objects, as progress streams send them."""
        decoder = json.JSONDecoder()
        buf = ""
        for chunk in self.iter_chunks():
            buf += chunk.decode("utf-8", "replace")
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    obj, end = decoder.raw_decode(buf)
                except ValueError:
                    break
                buf = buf[end:]
                yield obj

    def close(self) -> None:
        self.raw.close()
        self._conn.close()


class HijackedConnection:
    """A socket the daemon upgraded to a raw stream (attach, exec start)."""

    def __init__(self, sock: socket.socket, initial: bytes, content_type: str) -> None:
        self.sock = sock
        self._initial = initial
        self.content_type = content_type

    @property
    def multiplexed(self) -> bool:
        return "multiplexed-stream" in self.content_type

    def iter_chunks(self, size: int = 65536) -> Iterator[bytes]:
        if self._initial:
            data, self._initial = self._initial, b""
            yield data
        while True:
            try:
                chunk = self.sock.recv(size)
            except InterruptedError:
                continue
            except (ConnectionResetError, OSError):
                return
            if not chunk:
                return
            yield chunk

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: tells the daemon stdin ended while output keeps flowing."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _error_message(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text or http.client.responses.get(status, f"status {status}")
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])
    return text


class Client:
    """Talks to one daemon; negotiates the API version like the docker CLI."""

    def __init__(
        self,
        host: DaemonHost,
        version: str | None = None,
        autostart: bool = True,
        timeout: float | None = None,
    ) -> None:
        self.host = host
        # An explicit DOCKER_API_VERSION pins the version (docker does the same).
        pinned = version or os.environ.get("DOCKER_API_VERSION")
        self.version = pinned or API_VERSION
        self._negotiable = not pinned
        self.autostart = autostart and not host.explicit and host.url == DEFAULT_HOST
        self.timeout = timeout
        self._started_daemon = False

    # -- connections -------------------------------------------------------

    def _new_connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        if self.host.scheme == "unix":
            return _UnixHTTPConnection(self.host.address, timeout=timeout)
        return http.client.HTTPConnection(self.host.address, self.host.port, timeout=timeout)

    def _connect(self, conn: http.client.HTTPConnection) -> None:
        try:
            conn.connect()
        except OSError as exc:
            self._handle_connect_error(exc)
            try:
                conn.connect()
            except OSError as exc2:
                raise DaemonUnreachable(self.host.url, str(exc2)) from None

    def _handle_connect_error(self, exc: OSError) -> None:
        """Auto-start the daemon for the default socket, else raise DaemonUnreachable."""
        if isinstance(exc, PermissionError):
            raise DaemonUnreachable(self.host.url, str(exc)) from None
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

    def _url(self, path: str, query: Mapping[str, QueryValue] | None) -> str:
        qs = encode_query(query)
        # names can hold anything a user typed; keep '/' and ':' (image refs) readable
        safe_path = quote(path, safe="/:@!$&'()*+,;=-._~")
        return f"/v{self.version}{safe_path}" + (f"?{qs}" if qs else "")

    # -- requests ------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, QueryValue] | None = None,
        body: Any = None,
        data: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send a request; raise APIError for non-2xx; the body is left to the caller.

        `body` is JSON-encoded; `data` is sent raw (a file is streamed chunked).
        """
        hdrs = {"User-Agent": USER_AGENT, "Host": self._host_header()}
        payload: bytes | IO[bytes] | None = data
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        for attempt in range(2):
            conn = self._new_connection(timeout if timeout is not None else self.timeout)
            self._connect(conn)
            url = self._url(path, query)
            try:
                if payload is None or isinstance(payload, bytes):
                    conn.request(method, url, body=payload, headers=hdrs)
                else:
                    hdrs.setdefault("Content-Type", "application/x-tar")
                    conn.request(method, url, body=payload, headers=hdrs, encode_chunked=True)
                raw = conn.getresponse()
            except (BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                raise ProtocolError(f"connection to the daemon was lost: {exc}") from None
            except http.client.HTTPException as exc:
                conn.close()
                raise ProtocolError(f"bad response from the daemon: {exc!r}") from None
            if 200 <= raw.status < 300 or raw.status == 101:
                return Response(conn, raw)
            message = _error_message(raw.status, raw.read())
            conn.close()
            if attempt == 0 and self._downgrade(raw.status, message):
                if payload is not None and not isinstance(payload, bytes):
                    try:
                        payload.seek(0)
                    except (OSError, AttributeError, ValueError):
                        raise APIError(raw.status, message) from None
                continue
            raise APIError(raw.status, message)
        raise AssertionError("unreachable")

    def _downgrade(self, status: int, message: str) -> bool:
        """After 'client version X is too new', use the daemon's version and retry."""
        if status != 400 or not self._negotiable:
            return False
        match = _TOO_NEW.search(message)
        if not match:
            return False
        self.version = match.group(2)
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
        """GET /_ping (unversioned); returns the response headers (API-Version, OSType...)."""
        conn = self._new_connection(self.timeout)
        self._connect(conn)
        try:
            conn.request("GET", "/_ping", headers={"User-Agent": USER_AGENT})
            raw = conn.getresponse()
            raw.read()
        except http.client.HTTPException as exc:
            raise ProtocolError(f"bad response from the daemon: {exc!r}") from None
        finally:
            conn.close()
        return {k: v for k, v in raw.headers.items()}

    def negotiate(self) -> str:
        """Explicit negotiation via /_ping, for callers that want it up front."""
        if self._negotiable:
            headers = {k.lower(): v for k, v in self.ping().items()}
            api = headers.get("api-version")
            if api and _version_tuple(api) < _version_tuple(self.version):
                self.version = api
            self._negotiable = False
        return self.version

    # -- hijack ------------------------------------------------------------

    def hijack(
        self, path: str, query: Mapping[str, QueryValue] | None = None
    ) -> HijackedConnection:
        """POST with Connection: Upgrade; on 101 (or 200) the socket becomes the stream."""
        for attempt in range(2):
            conn = self._new_connection(None)
            self._connect(conn)
            sock = conn.sock
            assert sock is not None
            conn.sock = None  # the socket now belongs to the hijacked stream
            request = (
                f"POST {self._url(path, query)} HTTP/1.1\r\n"
                f"Host: {self._host_header()}\r\n"
                f"User-Agent: {USER_AGENT}\r\n"
                "Content-Type: text/plain\r\n"
                "Connection: Upgrade\r\n"
                "Upgrade: tcp\r\n"
                "\r\n"
            )
            sock.sendall(request.encode())
            status, headers, rest = _read_response_head(sock)
            if status in (101, 200):
                return HijackedConnection(sock, rest, headers.get("content-type", ""))
            body = _read_error_body(sock, headers, rest)
            sock.close()
            message = _error_message(status, body)
            if attempt == 0 and self._downgrade(status, message):
                continue
            raise APIError(status, message)
        raise AssertionError("unreachable")


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return (0,)


def _read_response_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ProtocolError("the daemon closed the connection before answering")
        buf += chunk
        if len(buf) > 65536:
            raise ProtocolError("response header from the daemon is too large")
    head, _, rest = buf.partition(b"\r\n\r\n")
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
    return status, headers, rest


def _read_error_body(sock: socket.socket, headers: dict[str, str], rest: bytes) -> bytes:
    length = headers.get("content-length")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        # Small error bodies only: collect until the terminating chunk.
        data = rest
        while not data.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        out = b""
        while data:
            size_line, _, data = data.partition(b"\r\n")
            try:
                size = int(size_line.split(b";")[0], 16)
            except ValueError:
                break
            if size == 0:
                break
            out += data[:size]
            data = data[size + 2 :]
        return out
    if length is not None:
        want = int(length)
        data = rest
        while len(data) < want:
            chunk = sock.recv(want - len(data))
            if not chunk:
                break
            data += chunk
        return data
    return rest


def start_daemon() -> subprocess.Popen[bytes]:
    """Launch `python -m dockyard daemon` detached, its output appended to the log."""
    sys.stderr.write(f"Starting the dockyard daemon in the background (log: {LOG_FILE})\n")
    sys.stderr.flush()
    import subprocess

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
