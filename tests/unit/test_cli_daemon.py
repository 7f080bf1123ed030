"""The CLI against a fake daemon on a temporary unix socket.

Checks what a user (or the real daemon) would see: the request lines, bodies
and headers each verb sends, the bytes printed, and the exit codes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dockyard.cli.main import main


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # for hijacked attach: raw bytes written after the 101 answer
    stream: bytes | None = None


Handler = Callable[[Request], Reply]


class FakeDaemon:
    """A tiny HTTP/1.1 server: one thread per connection, scripted replies."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Request] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def route(self, method: str, pattern: str, handler: Handler | Reply) -> None:
        h = handler if callable(handler) else (lambda _r, rep=handler: rep)
        self.routes.append((method, re.compile(pattern), h))

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            body = self._read_body(conn, headers, rest)
            req = Request(method, target, headers, body)
            self.requests.append(req)
            reply = self._dispatch(req)
            self._answer(conn, req, reply)

    @staticmethod
    def _read_body(conn: socket.socket, headers: dict[str, str], rest: bytes) -> bytes:
        if headers.get("transfer-encoding") == "chunked":
            data = rest
            while not data.endswith(b"0\r\n\r\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            out = b""
            while data:
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line, 16)
                if size == 0:
                    break
                out += data[:size]
                data = data[size + 2 :]
            return out
        length = int(headers.get("content-length", "0"))
        data = rest
        while len(data) < length:
            data += conn.recv(length - len(data))
        return data

    def _dispatch(self, req: Request) -> Reply:
        path = re.sub(r"^/v[0-9.]+", "", req.path)
        for method, pattern, handler in self.routes:
            if method == req.method and pattern.fullmatch(path):
                return handler(req)
        return Reply(404, {"message": f"page not found: {req.method} {path}"})

    @staticmethod
    def _answer(conn: socket.socket, req: Request, reply: Reply) -> None:
        if reply.stream is not None:
            conn.sendall(
                b"HTTP/1.1 101 UPGRADED\r\n"
                b"Content-Type: application/vnd.docker.multiplexed-stream\r\n"
                b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" + reply.stream
            )
            return
        if isinstance(reply.body, bytes):
            payload = reply.body
            ctype = "application/octet-stream"
        else:
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
            ctype = "application/json"
        head = f"HTTP/1.1 {reply.status} X\r\nContent-Type: {ctype}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
        head += f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        conn.sendall(head.encode() + payload)


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(data)) + data


CID = "4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2"


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Any:
    d = tempfile.mkdtemp(prefix="dy")
    path = os.path.join(d, "d.sock")
    fake = FakeDaemon(path)
    monkeypatch.setenv("DOCKYARD_HOST", f"unix://{path}")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    yield fake
    fake.close()


def paths(daemon: FakeDaemon) -> list[str]:
    return [f"{r.method} {re.sub(r'^/v[0-9.]+', '', r.path)}" for r in daemon.requests]


def test_run_detached_sends_docker_create_body_and_prints_full_id(daemon, capfd):
    daemon.route("POST", "/containers/create", Reply(201, {"Id": CID, "Warnings": []}))
    daemon.route("POST", f"/containers/{CID}/start", Reply(204))
    code = main(
        ["run", "-d", "--name", "web", "-e", "A=B", "-p", "8080:80", "busybox", "sleep", "9"]
    )
    out, err = capfd.readouterr()
    assert code == 0, err
    assert out == CID + "\n"
    assert paths(daemon) == ["POST /containers/create", f"POST /containers/{CID}/start"]
    create = daemon.requests[0]
    assert create.target.startswith("/v1.50/containers/create?")
    assert create.query["name"] == ["web"]
    assert create.headers["content-type"] == "application/json"
    body = create.json()
    assert body["Image"] == "busybox"
    assert body["Cmd"] == ["sleep", "9"]
    assert body["Env"] == ["A=B"]
    assert body["AttachStdout"] is False and body["AttachStderr"] is False
    assert body["ExposedPorts"] == {"80/tcp": {}}
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}


def test_run_attached_streams_output_and_exits_with_container_code(daemon, capfdbinary):
    daemon.route("POST", "/containers/create", Reply(201, {"Id": CID, "Warnings": []}))
    daemon.route(
        "POST",
        f"/containers/{CID}/attach",
        Reply(stream=frame(1, b"hello\n") + frame(2, b"oops\n") + frame(1, b"\x00\xffbin")),
    )
    daemon.route("POST", f"/containers/{CID}/wait", Reply(200, {"StatusCode": 3}))
    daemon.route("POST", f"/containers/{CID}/start", Reply(204))
    code = main(["run", "--rm", "busybox", "sh", "-c", "echo hello"])
    out, err = capfdbinary.readouterr()
    assert code == 3
    # raw fds: binary-safe, stdout and stderr kept apart
    assert out == b"hello\n\x00\xffbin"
    assert err == b"oops\n"
    order = paths(daemon)
    assert order.index(f"POST /containers/{CID}/attach") < order.index(
        f"POST /containers/{CID}/start"
    )
    assert order.index(f"POST /containers/{CID}/wait") < order.index(
        f"POST /containers/{CID}/start"
    )
    attach = next(r for r in daemon.requests if r.path.endswith("/attach"))
    assert attach.headers["connection"] == "Upgrade"
    assert attach.headers["upgrade"] == "tcp"
    assert attach.query == {"stream": ["1"], "stdin": ["0"], "stdout": ["1"], "stderr": ["1"]}
    wait = next(r for r in daemon.requests if r.path.endswith("/wait"))
    assert wait.query["condition"] == ["removed"]
    assert daemon.requests[0].json()["HostConfig"]["AutoRemove"] is True


def test_run_missing_image_pulls_it_and_reports_the_pull_error(daemon, capfd):
    daemon.route("POST", "/containers/create", Reply(404, {"message": "No such image: x:latest"}))
    daemon.route(
        "POST",
        "/images/create",
        Reply(404, {"message": "pull access denied for x, repository does not exist"}),
    )
    code = main(["run", "x"])
    out, err = capfd.readouterr()
    assert code == 125
    assert err == (
        "Unable to find image 'x:latest' locally\n"
        "dockyard: Error response from daemon: pull access denied for x, repository does not exist\n"
    )
    pull = next(r for r in daemon.requests if r.path.endswith("/images/create"))
    assert pull.query == {"fromImage": ["x"], "tag": ["latest"]}
    assert "x-registry-auth" in pull.headers


def test_run_pull_never_does_not_pull(daemon, capfd):
    daemon.route("POST", "/containers/create", Reply(404, {"message": "No such image: x:latest"}))
    code = main(["run", "--pull", "never", "x"])
    _out, err = capfd.readouterr()
    assert code == 125
    assert err == "dockyard: Error response from daemon: No such image: x:latest\n"
    assert [r.path.rsplit("/", 2)[-2:] for r in daemon.requests] == [["containers", "create"]]


def test_run_bad_pull_option(daemon, capfd):
    assert main(["run", "--pull", "sometimes", "x"]) == 125
    assert 'invalid pull option: \'sometimes\': must be one of "always", "missing" or "never"' in (
        capfd.readouterr().err
    )


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('failed to create task: exec: "nosuchcmd": executable file not found in $PATH', 127),
        ('exec: "/etc": permission denied', 126),
        ("cgroup setup failed", 125),
    ],
)
def test_run_start_failure_exit_codes(daemon, capfd, message, code):
    daemon.route("POST", "/containers/create", Reply(201, {"Id": CID, "Warnings": []}))
    daemon.route("POST", f"/containers/{CID}/attach", Reply(stream=b""))
    daemon.route("POST", f"/containers/{CID}/wait", Reply(200, {"StatusCode": 0}))
    daemon.route("POST", f"/containers/{CID}/start", Reply(400, {"message": message}))
    assert main(["run", "busybox", "nosuchcmd"]) == code
    assert capfd.readouterr().err == f"dockyard: Error response from daemon: {message}\n"


def test_ps_table(daemon, capfd, monkeypatch):
    import time

    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    daemon.route(
        "GET",
        "/containers/json",
        Reply(
            200,
            [
                {
                    "Id": CID,
                    "Names": ["/web"],
                    "Image": "busybox",
                    "Command": "sleep 1000000000000000",
                    "Created": int(now) - 5,
                    "State": "running",
                    "Status": "Up 5 seconds",
                    "Ports": [
                        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}
                    ],
                    "Labels": {},
                }
            ],
        ),
    )
    assert main(["ps", "-a"]) == 0
    out = capfd.readouterr().out
    assert daemon.requests[0].query == {"all": ["1"]}
    assert out.splitlines() == [
        "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         PORTS                  NAMES",
        '4fa6e0f0c678   busybox   "sleep 1000000000000…"   5 seconds ago   Up 5 seconds   0.0.0.0:8080->80/tcp   web',
    ]


def test_ps_quiet_and_filters(daemon, capfd):
    daemon.route("GET", "/containers/json", Reply(200, [{"Id": CID, "Names": ["/a"]}]))
    assert main(["ps", "-qa", "--filter", "status=exited", "-f", "label=x=y"]) == 0
    assert capfd.readouterr().out == CID[:12] + "\n"
    q = daemon.requests[0].query
    assert json.loads(q["filters"][0]) == {"status": {"exited": True}, "label": {"x=y": True}}


def test_rm_force_prints_names_and_collects_errors(daemon, capfd):
    daemon.route("DELETE", "/containers/web", Reply(204))
    daemon.route("DELETE", "/containers/nope", Reply(404, {"message": "No such container: nope"}))
    code = main(["rm", "-f", "web", "nope"])
    out, err = capfd.readouterr()
    assert code == 1
    assert out == "web\n"
    assert err == "Error response from daemon: No such container: nope\n"
    assert daemon.requests[0].method == "DELETE"
    assert daemon.requests[0].target == "/v1.50/containers/web?force=1"


def test_version_negotiation_falls_back_to_daemon_version(daemon, capfd):
    def version(req: Request) -> Reply:
        if req.path.startswith("/v1.50/"):
            return Reply(
                400,
                {
                    "message": "client version 1.50 is too new. Maximum supported API version is 1.43"
                },
            )
        return Reply(
            200, {"Version": "0.1.0", "ApiVersion": "1.43", "Os": "linux", "Arch": "amd64"}
        )

    daemon.route("GET", "/version", version)
    assert main(["version"]) == 0
    out = capfd.readouterr().out
    assert [r.path for r in daemon.requests] == ["/v1.50/version", "/v1.43/version"]
    assert " API version:       1.43 (downgraded from 1.50)\n" in out
    assert "\nServer:\n Engine:\n  Version:          0.1.0\n" in out


def test_explicit_host_unreachable_message(capfd, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/x.sock")
    monkeypatch.delenv("DOCKYARD_HOST", raising=False)
    assert main(["ps"]) == 1
    assert capfd.readouterr().err == (
        f"Cannot connect to the Dockyard daemon at unix://{tmp_path}/x.sock. "
        "Is the dockyard daemon running?\n"
    )


def test_inspect_prints_indented_array_and_missing_object(daemon, capfd):
    daemon.route("GET", "/containers/web/json", Reply(200, {"Id": CID, "Name": "/web"}))
    daemon.route("GET", "/containers/nope/json", Reply(404, {"message": "No such container: nope"}))
    daemon.route("GET", "/images/nope/json", Reply(404, {"message": "No such image: nope"}))
    code = main(["inspect", "web", "nope"])
    out, err = capfd.readouterr()
    assert code == 1
    assert out == f'[\n    {{\n        "Id": "{CID}",\n        "Name": "/web"\n    }}\n]\n'
    assert err == "Error: No such object: nope\n"


def test_logs_demuxes_unless_tty(daemon, capfd):
    daemon.route("GET", "/containers/web/json", Reply(200, {"Id": CID, "Config": {"Tty": False}}))
    daemon.route(
        "GET", f"/containers/{CID}/logs", Reply(200, frame(1, b"out\n") + frame(2, b"err\n"))
    )
    assert main(["logs", "--tail", "5", "-t", "web"]) == 0
    out, err = capfd.readouterr()
    assert (out, err) == ("out\n", "err\n")
    assert daemon.requests[1].query == {
        "stdout": ["1"],
        "stderr": ["1"],
        "timestamps": ["1"],
        "tail": ["5"],
    }


def test_import_streams_file_and_prints_id(daemon, capfd, tmp_path):
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(b"x" * 100000)
    daemon.route("POST", "/images/create", Reply(200, b'{"status":"sha256:abc"}\r\n'))
    code = main(["import", "-c", 'CMD ["sh"]', "-m", "hi", str(tar), "myimg:1"])
    assert code == 0
    assert capfd.readouterr().out == "sha256:abc\n"
    req = daemon.requests[0]
    assert req.body == tar.read_bytes()
    assert req.query == {
        "fromSrc": ["-"],
        "repo": ["myimg"],
        "tag": ["1"],
        "message": ["hi"],
        "changes": ['CMD ["sh"]'],
    }


def test_rmi_prints_untagged_and_deleted(daemon, capfd):
    daemon.route(
        "DELETE",
        "/images/busybox",
        Reply(200, [{"Untagged": "busybox:latest"}, {"Deleted": "sha256:abc"}]),
    )
    assert main(["rmi", "busybox"]) == 0
    assert capfd.readouterr().out == "Untagged: busybox:latest\nDeleted: sha256:abc\n"


MODULES_AFTER = (
    "import sys\n"
    "from dockyard.cli.main import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('MODULES', rc, ' '.join(sorted(sys.modules)), file=sys.stderr)\n"
)
# What must never load for a plain verb: the daemon's stack, heavy libraries,
# and the stdlib modules the client avoids on purpose for start-up time.
FORBIDDEN = (
    "aiohttp",
    "msgspec",
    "pydantic",
    "http",
    "email",
    "ssl",
    "json",
    "typing",
    "dataclasses",
)
FORBIDDEN_DOCKYARD = ("dockyard.cli.gotemplate", "dockyard.engine", "dockyard.runtime", "dockyard.api", "dockyard.kernel",
                      "dockyard.image", "dockyard.network", "dockyard.daemon")  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [["version"], ["run", "busybox", "true"], ["run", "-d", "x"], ["ps", "-a"], ["ps", "-q"]],
)
def test_hot_verbs_import_only_what_they_need(daemon, argv):
    daemon.route("GET", "/version", Reply(200, {"Version": "0.1.0", "ApiVersion": "1.50"}))
    daemon.route("POST", "/containers/create", Reply(201, {"Id": CID, "Warnings": []}))
    daemon.route("POST", f"/containers/{CID}/attach", Reply(stream=b""))
    daemon.route("POST", f"/containers/{CID}/wait", Reply(200, {"StatusCode": 0}))
    daemon.route("POST", f"/containers/{CID}/start", Reply(204))
    daemon.route("GET", "/containers/json", Reply(200, [{"Id": CID, "Names": ["/a"]}]))
    proc = subprocess.run(
        [sys.executable, "-c", MODULES_AFTER, *argv], capture_output=True, text=True, timeout=30
    )
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES"))
    _, rc, *modules = line.split()
    assert rc == "0", proc.stderr
    bad = [m for m in modules if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN_DOCKYARD)]
    assert bad == []


def test_unknown_flag_exits_125_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "run", "--foo", "busybox"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    )
    assert proc.returncode == 125
    assert proc.stderr == "unknown flag: --foo\nSee 'dockyard run --help'.\n"


def test_attach_streams_and_returns_exit_code(daemon, capfd):
    daemon.route(
        "GET",
        "/containers/web/json",
        Reply(200, {"Id": CID, "State": {"Running": True}, "Config": {"Tty": False}}),
    )
    daemon.route("POST", f"/containers/{CID}/wait", Reply(200, {"StatusCode": 6}))
    daemon.route("POST", f"/containers/{CID}/attach", Reply(stream=frame(1, b"tick\n")))
    assert main(["attach", "web"]) == 6
    assert capfd.readouterr().out == "tick\n"
    wait = next(r for r in daemon.requests if r.path.endswith("/wait"))
    assert wait.query["condition"] == ["not-running"]


def test_attach_to_stopped_container(daemon, capfd):
    daemon.route(
        "GET", "/containers/web/json", Reply(200, {"Id": CID, "State": {"Running": False}})
    )
    assert main(["attach", "web"]) == 1
    assert capfd.readouterr().err == "You cannot attach to a stopped container, start it first\n"
