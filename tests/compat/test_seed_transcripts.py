"""The 2013 seed article, replayed: its exact request bytes, over the unix
socket and over TCP, get the answers the article shows (ids and dates aside).

The seed's client was Docker 0.5.3 speaking API v1.4:
create -> 201 {"Id":...}, start -> 204, attach?logs=1&stream=1 -> 200 with
Content-Type application/vnd.docker.raw-stream and the raw output (no frame
headers), and `curl .../v1.4/containers/json | python -m json.tool` lists
containers with the 2013 field set.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time

import pytest

# Byte for byte what `docker run ubuntu /bin/echo hello world` wrote (seed, strace).
CREATE_BODY = (
    b'{"Hostname":"","User":"","Memory":0,"MemorySwap":0,"CpuShares":0,'
    b'"AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"PortSpecs":null,'
    b'"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,'
    b'"Cmd":["/bin/echo","hello","world"],"Dns":null,"Image":"ubuntu","Volumes":{},'
    b'"VolumesFrom":"","Entrypoint":[],"NetworkDisabled":false}'
)
CREATE = (
    b"POST /v1.4/containers/create HTTP/1.1\r\nHost: \r\nUser-Agent: Docker-Client/0.5.3\r\n"
    b"Content-Length: 335\r\nContent-Type: application/json\r\n\r\n" + CREATE_BODY
)
START_BODY = b'{"Binds":null,"ContainerIDFile":""}'
V14_FIELDS = {"Id", "Image", "Command", "Created", "Status", "Ports", "SizeRw", "SizeRootFs"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_request(cid: str) -> bytes:
    return (
        f"POST /v1.4/containers/{cid}/start HTTP/1.1\r\nHost: \r\nUser-Agent: Docker-Client/0.5.3\r\n"
        f"Content-Length: 35\r\nContent-Type: application/json\r\n\r\n"
    ).encode() + START_BODY


def attach_request(cid: str) -> bytes:
    return (
        f"POST /v1.4/containers/{cid}/attach?logs=1&stderr=1&stdout=1&stream=1 HTTP/1.1\r\n"
        f"Host: \r\nUser-Agent: Docker-Client/0.5.3\r\nContent-Length: 0\r\nContent-Type: plain/text\r\n\r\n"
    ).encode()


def test_seed_requests_are_the_seeds_sizes():
    # write(3, ..., 470) / 181 / 174 in the strace: the replay sends the same bytes.
    assert len(CREATE_BODY) == 335
    assert len(CREATE) == 470
    assert len(start_request("6b4b8793687d")) == 181
    assert len(attach_request("6b4b8793687d")) == 174


class Transport:
    """How the seed reached the daemon: the unix socket, or -H 127.0.0.1:4243."""

    def __init__(self, kind: str, daemon) -> None:
        self.kind = kind
        self.daemon = daemon

    def connect(self) -> socket.socket:
        if self.kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(self.daemon.socket)
        else:
            s = socket.create_connection(("127.0.0.1", self.daemon.tcp_port), timeout=30)
        return s

    def curl(self, *args: str) -> list[str]:
        if self.kind == "unix":
            return ["curl", "-s", "--unix-socket", self.daemon.socket, *args]
        return ["curl", "-s", *args]

    def url(self, path: str) -> str:
        if self.kind == "unix":
            return f"http://localhost{path}"
        return f"http://localhost:{self.daemon.tcp_port}{path}"

    def exchange(self, raw: bytes, until_eof: bool = False) -> tuple[str, dict[str, str], bytes]:
        """Send raw bytes on a new connection, as the seed's client did."""
        with self.connect() as s:
            s.sendall(raw)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if until_eof:
                while chunk := s.recv(4096):
                    body += chunk
            else:
                length = int(headers.get("content-length", "0"))
                while len(body) < length:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    body += chunk
            return lines[0], headers, body


@pytest.fixture(scope="module")
def ubuntu(daemon):
    """The seed runs `ubuntu`; here that name is busybox under another tag."""
    proc = daemon.dockyard("tag", "busybox", "ubuntu")
    assert proc.returncode == 0, proc.stderr
    return "ubuntu"


@pytest.fixture(params=["unix", "tcp"])
def transport(request, daemon, ubuntu) -> Transport:
    return Transport(request.param, daemon)


def seed_run(transport: Transport) -> tuple[str, bytes, dict[str, str]]:
    status, _h, body = transport.exchange(CREATE)
    assert status == "HTTP/1.1 201 Created", (status, body)
    created = json.loads(body)
    assert set(created) <= {"Id", "Warnings"}, created
    cid = created["Id"]
    assert re.match(r"^[0-9a-f]{12,64}$", cid), cid

    # The seed's client used the 12-character id it was given: so do we.
    status, _h, body = transport.exchange(start_request(cid[:12]))
    assert status == "HTTP/1.1 204 No Content", (status, body)
    assert body == b""

    status, headers, body = transport.exchange(attach_request(cid[:12]), until_eof=True)
    assert status == "HTTP/1.1 200 OK", (status, body)
    return cid, body, headers


def test_seed_hello_world_exact_bytes(transport):
    _cid, body, headers = seed_run(transport)
    assert headers.get("content-type") == "application/vnd.docker.raw-stream"
    assert "transfer-encoding" not in headers, "the raw stream must not be chunked"
    # Raw: no 8-byte multiplexing headers, and the logs are not repeated by the stream.
    assert body == b"hello world\n"


def test_seed_containers_json_2013_fields(transport, daemon):
    cid, _body, _h = seed_run(transport)
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", " ".join(transport.curl(f"'{transport.url('/v1.4/containers/json?all=1')}'"))
         + f" | {sys.executable} -m json.tool"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("[\n    {\n        "), proc.stdout[:200]  # pretty-printed
    listed = json.loads(proc.stdout)
    mine = [c for c in listed if cid.startswith(c["Id"]) or c["Id"].startswith(cid)]
    assert len(mine) == 1, listed
    c = mine[0]
    assert set(c) == V14_FIELDS
    assert c["Image"] == "ubuntu:latest"
    assert c["Command"] == "/bin/echo hello world"
    assert isinstance(c["Created"], int) and abs(c["Created"] - time.time()) < 600
    assert c["Status"] == "Exit 0"
    assert c["Ports"] == ""
    assert isinstance(c["SizeRw"], int) and isinstance(c["SizeRootFs"], int)


def test_seed_containers_json_running_status(transport, daemon):
    body = CREATE_BODY.replace(b'["/bin/echo","hello","world"]', b'["sleep","30"]')
    raw = CREATE.replace(CREATE_BODY, body).replace(
        b"Content-Length: 335", f"Content-Length: {len(body)}".encode()
    )
    status, _h, resp = transport.exchange(raw)
    assert status == "HTTP/1.1 201 Created", resp
    cid = json.loads(resp)["Id"]
    try:
        status, _h, _b = transport.exchange(start_request(cid))
        assert status == "HTTP/1.1 204 No Content"
        proc = subprocess.run(
            transport.curl(transport.url("/v1.4/containers/json")), capture_output=True, timeout=30
        )
        listed = json.loads(proc.stdout)
        mine = [c for c in listed if cid.startswith(c["Id"]) or c["Id"].startswith(cid)]
        assert len(mine) == 1, listed
        assert mine[0]["Command"] == "sleep 30"
        assert re.match(r"^Up (Less than a second|\d+ seconds?)$", mine[0]["Status"]), mine[0][
            "Status"
        ]
    finally:
        daemon.request("DELETE", f"/containers/{cid}?force=1")


def test_seed_run_with_curl(transport):
    """The same three requests, as anyone would type them with curl."""
    create = subprocess.run(
        transport.curl("-X", "POST", "-H", "Content-Type: application/json", "--data-binary", CREATE_BODY.decode(),
                       "-w", "\n%{http_code}", transport.url("/v1.4/containers/create")),
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    body, _, code = create.stdout.rpartition("\n")
    assert code == "201", create.stdout
    cid = json.loads(body)["Id"]

    start = subprocess.run(
        transport.curl("-X", "POST", "-H", "Content-Type: application/json", "--data-binary", START_BODY.decode(),
                       "-w", "%{http_code}", transport.url(f"/v1.4/containers/{cid}/start")),
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert start.stdout == "204"

    attach = subprocess.run(
        transport.curl("-X", "POST", "-H", "Content-Type: plain/text", "-w", "%{content_type}",
                       transport.url(f"/v1.4/containers/{cid}/attach?logs=1&stderr=1&stdout=1&stream=1")),
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert attach.stdout == b"hello world\napplication/vnd.docker.raw-stream"


def test_seed_bare_host_flag(daemon_factory):
    """`dockyard daemon -H 127.0.0.1:4243`, the seed's form with no scheme."""
    port = free_port()
    d = daemon_factory(extra_args=["-H", f"127.0.0.1:{port}"])
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f"curl -s http://localhost:{port}/v1.4/containers/json | {sys.executable} -m json.tool"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + d.log_tail()
    assert json.loads(proc.stdout) == []
