"""The API bounds and checks what it accepts (issue 5).

Each test sends what an attacker (or a web page) would and asserts what a user
notices: the request is refused with dockerd's words and a 4xx, no container
appears, the daemon keeps its memory and keeps answering.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

DOCKERD_NAME_ERROR = "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
MB = 1 << 20


def container_ids(daemon) -> set[str]:
    resp = daemon.request("GET", "/containers/json?all=1")
    assert resp.status == 200, resp.body
    return {c["Id"] for c in resp.json()}


def create(daemon, body: dict, name: str = "", version: str = "") -> tuple[int, str]:
    query = f"?name={urllib.parse.quote(name, safe='')}" if name else ""
    resp = daemon.request("POST", f"{version}/containers/create{query}", body)
    return resp.status, resp.message


def refused(daemon, body: dict, name: str = "") -> tuple[int, str]:
    """create() for a body that must be refused; a container made anyway is removed
    (so that one accepted bad value cannot break the tests after it)."""
    query = f"?name={urllib.parse.quote(name, safe='')}" if name else ""
    resp = daemon.request("POST", f"/containers/create{query}", body)
    if resp.status == 201:
        daemon.request("DELETE", f"/containers/{resp.json()['Id']}?force=1")
    return resp.status, resp.message


# -- content type: a web page cannot send a JSON body -------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,  # a body without any Content-Type
    ],
)
def test_create_refuses_simple_request_bodies(daemon, unique, content_type):
    """What a cross-origin <form> or fetch(no-cors) can send: never a container."""
    name = unique("csrf")
    body = json.dumps(
        {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Binds": ["/:/host"]}}
    ).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    before = container_ids(daemon)
    resp = daemon.request("POST", f"/containers/create?name={name}", body, headers)
    assert resp.status == 400, resp.body
    if content_type:
        assert resp.message == (
            f"unsupported Content-Type header ({content_type}): must be 'application/json'"
        )
    else:
        assert resp.message.startswith("malformed Content-Type header ()"), resp.message
    assert container_ids(daemon) == before
    assert daemon.request("GET", f"/containers/{name}/json").status == 404


def test_json_content_type_with_charset_is_accepted(daemon, unique):
    """What the docker CLI, the SDK and curl send keeps working."""
    name = unique("ct")
    body = json.dumps({"Image": "busybox", "Cmd": ["true"]})
    resp = daemon.request(
        "POST",
        f"/containers/create?name={name}",
        body,
        {"Content-Type": "application/json; charset=utf-8"},
    )
    assert resp.status == 201, resp.body
    assert daemon.request("DELETE", f"/containers/{name}").status == 204


@pytest.mark.parametrize("method,path", [("GET", "/_ping"), ("OPTIONS", "/containers/create")])
def test_no_cors_headers_for_a_web_page(daemon, method, path):
    resp = daemon.request(method, path, headers={"Origin": "http://evil.example"})
    assert not any(h.startswith("access-control-") for h in resp.headers), resp.headers


def test_browser_requests_are_refused(daemon, unique):
    """A request carrying Origin comes from a web page (a cross-origin form, or a
    DNS-rebinding page): refused even with a JSON body, even for body-less POSTs."""
    name = unique("origin")
    before = container_ids(daemon)
    resp = daemon.request(
        "POST",
        f"/containers/create?name={name}",
        {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Binds": ["/:/host"]}},
        {"Origin": "http://attacker.example:2375"},
    )
    assert resp.status == 403, resp.body
    assert "Origin" in resp.message
    assert not any(h.startswith("access-control-") for h in resp.headers), resp.headers
    assert container_ids(daemon) == before


def test_tcp_listener_refuses_a_form_post(daemon, unique):
    """The same attack through the TCP listener a browser can reach."""
    name = unique("tcp")
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Binds": ["/:/h"]}})
    with socket.create_connection(("127.0.0.1", daemon.tcp_port), timeout=30) as s:
        s.sendall(
            (
                f"POST /v1.50/containers/create?name={name} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n{body}"
            ).encode()
        )
        answer = read_all(s)
    head = answer.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 400"), answer
    assert "access-control-" not in head
    assert daemon.request("GET", f"/containers/{name}/json").status == 404


# -- size, depth, encoding -------------------------------------------------------


def read_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def send_huge_body(daemon, size: int, chunked: bool) -> tuple[bytes, int]:
    """Stream `size` bytes of JSON-ish body; return (answer, peak daemon RSS growth in KiB)."""
    pid = daemon.proc.pid
    base = rss_kb(pid)
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kb(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (
        "POST /containers/create HTTP/1.1\r\nHost: docker\r\n"
        f"Content-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
    ).encode()
    piece = b'{"Image":"' + b"a" * (MB - 12) + b'",'
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(daemon.socket)
    try:
        s.sendall(head)
        sent = 0
        try:
            while sent < size:
                data = piece[: size - sent]
                s.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                sent += len(data)
            if chunked:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered and closed before taking it all: fine
        answer = read_all(s)
    finally:
        s.close()
        done.set()
        sampler.join()
    return answer, peak - base


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_100mb_body_is_refused_with_bounded_memory(daemon, chunked):
    answer, growth_kb = send_huge_body(daemon, 100 * MB, chunked)
    kind = "chunked" if chunked else "sized"
    print(f"daemon RSS growth under a 100 MB body ({kind}): {growth_kb / 1024:.1f} MiB")
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith((b"HTTP/1.1 413", b"HTTP/1.1 400")), answer[:300]
    assert b"too large" in answer
    # The body is never held whole: a few MiB of buffers at most.
    assert growth_kb < 32 * 1024, f"daemon RSS grew by {growth_kb} KiB"
    assert daemon.request("GET", "/_ping").status == 200


def test_deep_json_is_400(daemon):
    body = b'{"Image":"busybox","Cmd":["true"],"Labels":' + b"[" * 10000 + b"]" * 10000 + b"}"
    resp = daemon.request("POST", "/containers/create", body, {"Content-Type": "application/json"})
    assert resp.status == 400, resp.body
    assert "exceeded max depth" in resp.message
    assert daemon.request("GET", "/_ping").status == 200


def test_deep_filters_query_is_400(daemon):
    """The filters query parameter is JSON too: 3000 levels fit in a request line."""
    deep = "[" * 3000 + "]" * 3000  # brackets need no quoting; 6000 bytes < 8190
    for path in ("/containers/json", "/images/json"):
        resp = daemon.request("GET", f"{path}?filters={deep}")
        assert resp.status == 400, resp.body
        assert "exceeded max depth" in resp.message
    assert daemon.request("GET", "/_ping").status == 200


def test_invalid_utf8_is_400(daemon):
    body = b'{"Image":"busybox","Cmd":["echo","\xff\xfe"]}'
    resp = daemon.request("POST", "/containers/create", body, {"Content-Type": "application/json"})
    assert resp.status == 400, resp.body
    assert "invalid UTF-8" in resp.message


# -- values dockerd refuses, with its words ------------------------------------------

BUSYBOX = {"Image": "busybox", "Cmd": ["true"]}


def with_host(**host) -> dict:
    return {**BUSYBOX, "HostConfig": host}


BAD_BODIES = [
    pytest.param(
        with_host(CapAdd=["FOO"]), 'invalid CapAdd: unknown capability: "CAP_FOO"', id="capadd"
    ),
    pytest.param(
        with_host(CapDrop=["cap_nope"]),
        'invalid CapDrop: unknown capability: "CAP_NOPE"',
        id="capdrop",
    ),
    pytest.param(
        {**BUSYBOX, "WorkingDir": "x"},
        "the working directory 'x' is invalid, it needs to be an absolute path",
        id="relative-workdir",
    ),
    pytest.param(
        {**BUSYBOX, "Hostname": "h" * 65},
        f'hostname "{"h" * 65}" is too long (maximum 64 bytes)',
        id="hostname-too-long",
    ),
    pytest.param(
        {**BUSYBOX, "Hostname": "evil\n6.6.6.6 registry"},
        'invalid hostname "evil\\n6.6.6.6 registry"',
        id="hostname-newline",
    ),
    pytest.param(
        with_host(Binds=["/tmp:/"]),
        "invalid volume specification: '/tmp:/': invalid mount config for type \"bind\": "
        "invalid specification: destination can't be '/'",
        id="bind-root",
    ),
    pytest.param(
        with_host(Binds=["/tmp:/proc"]),
        "invalid volume specification: '/tmp:/proc': invalid mount config for type \"bind\": "
        "invalid specification: destination can't be '/proc'",
        id="bind-proc",
    ),
    pytest.param(
        with_host(Binds=["/tmp:/sys/"]),
        "invalid volume specification: '/tmp:/sys/': invalid mount config for type \"bind\": "
        "invalid specification: destination can't be '/sys'",
        id="bind-sys",
    ),
    pytest.param(
        with_host(Binds=["/tmp:/proc/sysrq-trigger"]),
        "is inside /proc",
        id="bind-inside-proc",
    ),
    pytest.param(
        with_host(Binds=["/tmp"]), "invalid volume specification: '/tmp'", id="bind-no-colon"
    ),
    pytest.param(
        with_host(Binds=["/tmp:/x:bogus"]), "invalid mode: bogus", id="bind-unknown-option"
    ),
    pytest.param(
        with_host(Binds=["/tmp:/x:ro,ro"]), "invalid mode: ro,ro", id="bind-repeated-option"
    ),
    pytest.param(
        with_host(Binds=["/tmp:rw"]), "invalid volume specification: '/tmp:rw'", id="bind-mode-only"
    ),
    pytest.param(
        with_host(SecurityOpt=["bogus"]), 'invalid --security-opt 1: "bogus"', id="secopt-1"
    ),
    pytest.param(
        with_host(SecurityOpt=["foo=bar"]), 'invalid --security-opt 2: "foo=bar"', id="secopt-2"
    ),
    pytest.param(
        with_host(SecurityOpt=["no-new-privileges=maybe"]),
        'invalid --security-opt 2: "no-new-privileges=maybe"',
        id="secopt-nnp-value",
    ),
    pytest.param(
        {**BUSYBOX, "ExposedPorts": {"abc/tcp": {}}},
        'invalid port specification: "abc/tcp"',
        id="exposed-port",
    ),
    pytest.param(
        with_host(PortBindings={"80/tcp": [{"HostPort": "8o"}]}),
        'invalid port specification: "8o"',
        id="host-port",
    ),
    pytest.param({**BUSYBOX, "StopSignal": "²"}, "Invalid signal: ²", id="stop-signal"),
    pytest.param(
        {**BUSYBOX, "Env": ["=oops"]}, "invalid environment variable: =oops", id="env-empty-name"
    ),
    pytest.param(
        {**BUSYBOX, "Cmd": ["echo", "a\0b"]},
        "invalid Config.Cmd[1]: a string may not hold a NUL byte",
        id="nul-in-cmd",
    ),
    pytest.param(
        with_host(Binds=["/tmp\0/x:/x"]),
        "invalid HostConfig.Binds[0]: a string may not hold a NUL byte",
        id="nul-in-bind",
    ),
    pytest.param(
        {**BUSYBOX, "WorkingDir": "/a\0b"},
        "invalid Config.WorkingDir: a string may not hold a NUL byte",
        id="nul-in-workdir",
    ),
    pytest.param(
        {**BUSYBOX, "Env": [f"V{i}=x" for i in range(5000)]},
        "too many environment variables: 5000 (maximum 4096)",
        id="env-count",
    ),
    pytest.param(
        {**BUSYBOX, "Labels": {f"l{i}": "x" for i in range(5000)}},
        "too many labels: 5000 (maximum 4096)",
        id="labels-count",
    ),
    pytest.param(
        with_host(Binds=[f"/tmp:/m{i}" for i in range(1100)]),
        "too many binds: 1100 (maximum 1024)",
        id="binds-count",
    ),
]


@pytest.mark.parametrize("body,message", BAD_BODIES)
def test_bad_create_values_are_400_with_dockerds_words(daemon, unique, body, message):
    name = unique("bad")
    before = container_ids(daemon)
    status, got = refused(daemon, body, name)
    assert status == 400, got
    assert message in got
    assert container_ids(daemon) == before


@pytest.mark.parametrize(
    "name",
    ["bad name", "trailing\n", "new\nline", "-dash", "a", "x" * 256, "nul\0byte"],
    ids=["space", "trailing-newline", "inner-newline", "dash", "one-char", "too-long", "nul"],
)
def test_bad_names_are_400(daemon, name):
    before = container_ids(daemon)
    status, got = refused(daemon, BUSYBOX, name)
    assert status == 400, got
    assert got.startswith(f"Invalid container name ({name})"), got
    assert container_ids(daemon) == before


def test_longest_name_is_accepted(daemon):
    name = "n" * 255
    status, got = create(daemon, BUSYBOX, name)
    assert status == 201, got
    assert daemon.request("DELETE", f"/containers/{name}").status == 204


def test_legacy_start_binds_are_checked(daemon):
    """The 2013 start body carries Binds: a bad one is a 400, never a 500."""
    resp = daemon.request("POST", "/v1.4/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    assert resp.status == 201, resp.body
    cid = resp.json()["Id"]
    try:
        for binds, words in [
            (["nocolon"], "invalid volume specification: 'nocolon'"),
            (["/tmp:/"], "destination can't be '/'"),
        ]:
            got = daemon.request(
                "POST", f"/v1.4/containers/{cid}/start", {"Binds": binds, "ContainerIDFile": ""}
            )
            assert got.status == 400, got.body
            assert words in got.message
        state = daemon.request("GET", f"/containers/{cid}/json").json()["State"]
        assert state["Status"] == "created"
    finally:
        daemon.request("DELETE", f"/containers/{cid}?force=1")


def run_to_end(daemon, name: str, body: dict) -> bytes:
    status, got = create(daemon, body, name)
    assert status == 201, got
    try:
        assert daemon.request("POST", f"/containers/{name}/start").status == 204
        code = daemon.request("POST", f"/containers/{name}/wait").json()["StatusCode"]
        logs = daemon.request("GET", f"/containers/{name}/logs?stdout=1&stderr=1").body
        assert code == 0, logs
        return logs
    finally:
        daemon.request("DELETE", f"/containers/{name}?force=1")


def test_good_values_still_run(daemon, unique):
    """The checks refuse only what is wrong: a normal create with a bind, caps, a
    workdir and security options Dockyard honours runs and sees them."""
    logs = run_to_end(
        daemon,
        unique("good"),
        {
            "Image": "busybox",
            "Cmd": [
                "sh",
                "-c",
                "pwd; hostname; ls /m/hostname; grep -E 'NoNewPrivs|Seccomp:' /proc/self/status",
            ],
            "WorkingDir": "/tmp//x/..",
            "Hostname": "web-1.example",
            "HostConfig": {
                "Binds": ["/etc:/m:ro,rprivate"],
                "CapAdd": ["net_admin"],
                "CapDrop": ["CAP_MKNOD"],
                "SecurityOpt": ["no-new-privileges", "apparmor=unconfined", "label=disable"],
            },
        },
    )
    assert b"/tmp\n" in logs and b"web-1.example" in logs and b"/m/hostname" in logs, logs
    assert re.search(rb"NoNewPrivs:\s+1", logs), logs
    assert re.search(rb"Seccomp:\s+2", logs), logs  # the default profile still applies


def test_security_opts_are_acted_on(daemon, unique):
    """Accepted options change what the process gets; others are refused by name."""
    logs = run_to_end(
        daemon,
        unique("unconfined"),
        {
            "Image": "busybox",
            "Cmd": ["grep", "-E", "NoNewPrivs|Seccomp:", "/proc/self/status"],
            "HostConfig": {"SecurityOpt": ["seccomp=unconfined", "no-new-privileges=false"]},
        },
    )
    assert re.search(rb"NoNewPrivs:\s+0", logs), logs
    assert re.search(rb"Seccomp:\s+0", logs), logs
    # A path is the CLI's business (it sends the file's content): here it is not JSON.
    status, got = refused(daemon, with_host(SecurityOpt=["seccomp=/etc/profile.json"]))
    assert status == 400, got
    assert "Decoding seccomp profile failed" in got


def test_cli_run_with_a_bad_name_gets_dockers_error(daemon):
    proc = daemon.dockyard("run", "--rm", "--name", "bad name", "busybox", "true")
    assert proc.returncode == 125, proc.stderr
    assert (
        "Error response from daemon: Invalid container name (bad name), "
        f"{DOCKERD_NAME_ERROR}" in proc.stderr
    ), proc.stderr
