"""Docker Compose v2 (`dockyard compose`, the docker CLI's plugin) and Debian's
docker-compose 1.29 run the example application (examples/webapp) on Dockyard.

Each test brings up its own copy of the application on a free port of 127.0.0.1,
checks what a user would (the page answers, the visit count goes on, what `ps`
shows), and after `down` that the project left nothing on the host: containers,
networks, volumes, bridges, veths, mounts, namespaces, iptables rules.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from compose_app import (
    App,
    EventWatch,
    UnixHTTPConnection,
    compose_v1_missing,
    require_compose_v2,
)

pytestmark = pytest.mark.root


@pytest.fixture
def app(daemon, tmp_path) -> Iterator[App]:
    require_compose_v2()
    a = App.copy(daemon, tmp_path)
    yield a
    a.force_down()


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def ps_json(app: App) -> dict[str, dict]:
    """`compose ps -a --format json`, by container name."""
    out = ok(app.v2("ps", "-a", "--format", "json")).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r["Name"]: r for r in rows}


def ids(app: App) -> dict[str, str]:
    return {k: c["Id"] for k, c in app.containers().items()}


def test_compose_v2_runs_the_application_and_down_leaves_nothing(app: App):
    watch = EventWatch(app.daemon, {"type": ["network", "volume", "container"]})
    up = ok(app.v2("up", "-d", "--wait"))
    first = app.visit()
    assert first["schema"] == 2 and first["visits"] == 1, first
    p = app.project
    rows = ps_json(app)
    assert set(rows) == {f"{p}-store-1", f"{p}-migrate-1", f"{p}-api-1", f"{p}-web-1"}, up.stderr
    assert rows[f"{p}-migrate-1"]["State"] == "exited" and rows[f"{p}-migrate-1"]["ExitCode"] == 0
    for svc in ("store", "api"):
        assert rows[f"{p}-{svc}-1"]["Health"] == "healthy"
    web = rows[f"{p}-web-1"]
    assert web["State"] == "running"
    assert {"URL": "127.0.0.1", "TargetPort": 80, "PublishedPort": app.port, "Protocol": "tcp"} in (
        web["Publishers"]
    )

    # The start order the conditions ask for: store healthy before migrate starts,
    # migrate done (0) before api starts, api healthy before web starts.
    seen = watch.events[:]  # (the health log keeps only the last 5 probes: events tell)

    def when(service: str, action: str) -> int:
        name = f"{p}-{service}-1"
        return min(
            e["timeNano"]
            for e in seen
            if e["Type"] == "container"
            and e["Action"] == action
            and e["Actor"]["Attributes"].get("name") == name
        )

    assert when("store", "health_status: healthy") < when("migrate", "start")
    assert when("migrate", "die") < when("api", "start")
    assert when("api", "health_status: healthy") < when("web", "start")

    # A second `up` with nothing changed keeps every container.
    before = ids(app)
    again = ok(app.v2("up", "-d", "--wait"))
    assert "Recreate" not in again.stderr and "Creating" not in again.stderr, again.stderr
    assert ids(app) == before

    # A changed service is recreated alone; the others keep their containers.
    override = app.dir / "override.yaml"
    override.write_text("services:\n  api:\n    environment:\n      EXTRA: changed\n")
    changed = ok(app.v2("up", "-d", "--wait", files=(override,)))
    now = ids(app)
    assert now["api-1"] != before["api-1"], changed.stderr
    assert {k: v for k, v in now.items() if k != "api-1"} == {
        k: v for k, v in before.items() if k != "api-1"
    }, changed.stderr
    assert app.visit()["visits"] == first["visits"] + 1

    fp = app.footprint()
    assert len(fp.containers) == 4 and len(fp.networks) == 1 and len(fp.volumes) == 1
    assert fp.veths, "the running containers' veths on the project's bridge"
    down = ok(app.v2("down", "-v", files=(override,)))
    assert app.leftovers(fp) == [], down.stderr

    # /events told it all as dockerd does: the network by its id in every event.
    (nid,) = fp.networks
    events = [e for e in watch.stop() if e["Type"] != "container"]
    net_events = [(e["Action"], e["Actor"]["ID"]) for e in events if e["Type"] == "network"]
    assert ("create", nid) in net_events and net_events[-1] == ("destroy", nid), net_events
    assert {a for a, i in net_events if i == nid} == {"create", "connect", "disconnect", "destroy"}
    assert all(i == nid for _, i in net_events), net_events
    vol = f"{app.project}_data"
    actions = [e["Action"] for e in events if e["Type"] == "volume"]
    assert actions[0] == "create" and actions[-1] == "destroy", actions
    # store and migrate mount it at each start (and unmount it at each exit)
    assert actions.count("mount") == actions.count("unmount") >= 2, actions
    assert {e["Actor"]["ID"] for e in events if e["Type"] == "volume"} == {vol}


def test_compose_v2_verbs(app: App):
    ok(app.v2("up", "-d", "--wait", "--scale", "api=3"))
    p = app.project
    assert {k for k in app.containers() if k.startswith("api-")} == {"api-1", "api-2", "api-3"}
    # `api` names three containers: the embedded DNS spreads the web front over them.
    served = {app.visit()["api"] for _ in range(30)}
    assert len(served) >= 2, served
    count = app.visit()["visits"]

    # exec: in the container, with its exit code
    out = ok(app.v2("exec", "-T", "store", "cat", "/data/count")).stdout
    assert out.strip() == str(count)
    assert app.v2("exec", "-T", "store", "sh", "-c", "exit 3").returncode == 3
    # run --rm: a one-off container, gone afterwards
    run = ok(app.v2("run", "--rm", "-T", "migrate"))
    assert "migrate: data at schema 2" in run.stdout
    assert not [k for k in app.containers() if "run" in k]
    # logs, top, images, config
    assert "migrate: done" in ok(app.v2("logs", "migrate")).stdout
    top = ok(app.v2("top", "store")).stdout
    assert "httpd -f -p 80 -h /www" in top
    images = ok(app.v2("images")).stdout
    assert f"{p}-web-1" in images and "busybox" in images
    services = ok(app.v2("config", "--services")).stdout.split()
    assert sorted(services) == ["api", "migrate", "store", "web"]

    # logs -f follows: a line written now arrives
    follow = subprocess.Popen(
        [*app.v2_argv(), "logs", "-f", "--tail", "0", "--no-log-prefix", "store"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=app.v2_env(),
    )  # fmt: skip
    try:
        time.sleep(1)
        ok(app.v2("exec", "-T", "store", "sh", "-c", "echo followed-line >/proc/1/fd/1"))
        assert follow.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "followed-line" not in line:
            line = follow.stdout.readline()
        assert "followed-line" in line
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(timeout=30)

    # pause / unpause
    ok(app.v2("pause", "web"))
    assert ps_json(app)[f"{p}-web-1"]["State"] == "paused"
    ok(app.v2("unpause", "web"))
    assert ps_json(app)[f"{p}-web-1"]["State"] == "running"
    # stop / start: the page goes and comes back
    ok(app.v2("stop", "web"))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", app.port), timeout=2).close()
    ok(app.v2("start", "web"))
    assert app.visit()["visits"] == count + 1
    # restart: a new process
    started = app.containers()["store-1"]["Status"]
    pid_before = ok(app.v2("top", "store")).stdout
    ok(app.v2("restart", "store"))
    assert ok(app.v2("top", "store")).stdout != pid_before, started
    assert app.visit()["visits"] == count + 2

    fp = app.footprint()
    ok(app.v2("down", "-v"))
    assert app.leftovers(fp) == []


def test_compose_v2_up_in_the_foreground_attaches_and_ctrl_c_stops(app: App):
    """`up` without -d follows /events and attaches to every service's output."""
    up = subprocess.Popen(
        [*app.v2_argv(), "up"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=app.v2_env(),
    )  # fmt: skip
    try:
        assert app.visit()["visits"] == 1
        ok(app.v2("exec", "-T", "api", "sh", "-c", "echo attached-output >/proc/1/fd/1"))
        time.sleep(1)
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=120)
    assert up.returncode == 130 or up.returncode == 0, out
    assert "Attaching to api-1, migrate-1, store-1, web-1" in out, out
    assert "migrate-1  | migrate: done" in out and "migrate-1 exited with code 0" in out, out
    assert "api-1      | attached-output" in out, out
    assert "Gracefully Stopping..." in out, out
    states = {k: c["State"] for k, c in app.containers().items()}
    assert states == dict.fromkeys(("store-1", "migrate-1", "api-1", "web-1"), "exited"), out
    fp = app.footprint()
    ok(app.v2("down", "-v"))
    assert app.leftovers(fp) == []


def test_compose_1_29_runs_the_same_file(app: App):
    missing = compose_v1_missing()
    if missing:
        pytest.skip(missing)
    up = ok(app.v1("up", "-d"))
    assert app.visit()["schema"] == 2, up.stderr
    before = ids(app)
    again = ok(app.v1("up", "-d"))
    for svc in ("store", "api", "web"):
        assert f"{app.project}_{svc}_1 is up-to-date" in again.stderr, again.stderr
    assert {k: v for k, v in ids(app).items() if k != "migrate-1"} == {
        k: v for k, v in before.items() if k != "migrate-1"
    }
    ok(app.v1("up", "-d", "--scale", "api=2"))
    assert {k for k in app.containers() if k.startswith("api-")} == {"api-1", "api-2"}
    ps = ok(app.v1("ps")).stdout
    assert f"{app.project}_store_1" in ps and "Up (healthy)" in ps
    assert ok(app.v1("exec", "-T", "store", "cat", "/data/schema")).stdout.strip() == "2"
    assert "migrate: done" in ok(app.v1("run", "--rm", "migrate")).stdout
    assert "migrate: done" in ok(app.v1("logs", "migrate")).stdout
    visits = app.visit()["visits"]
    # Compose v2 sees the same project (same labels) as 1.29 made it.
    assert len(ps_json(app)) == 5
    fp = app.footprint()
    down = ok(app.v1("down", "-v"))
    assert app.leftovers(fp) == [], down.stderr
    assert visits >= 2


@pytest.mark.docker_cli
def test_docker_compose_plugin_of_the_docker_cli(app: App, daemon):
    """install.sh links the binary as ~/.docker/cli-plugins/docker-compose; the docker
    CLI then runs `docker compose` against DOCKER_HOST (here: $DOCKER_CONFIG's)."""
    from dockyard.cli.compose import binary

    plugins = Path(daemon.env["DOCKER_CONFIG"]) / "cli-plugins"
    plugins.mkdir(exist_ok=True)
    link = plugins / "docker-compose"
    if not link.exists():
        link.symlink_to(binary())
    env = {**app.env(), "DOCKER_BUILDKIT": "0"}
    f = ["-f", str(app.file)]
    assert "v2.40.3" in daemon.docker("compose", "version", env=env).stdout
    ok(daemon.docker("compose", *f, "up", "-d", "--wait", env=env, timeout=180))
    assert app.visit()["schema"] == 2
    fp = app.footprint()
    ok(daemon.docker("compose", *f, "down", "-v", env=env, timeout=120))
    assert app.leftovers(fp) == []


def test_a_taken_port_fails_with_dockerds_words_and_down_removes_what_up_made(app: App):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", app.port))
    holder.listen()
    try:
        up = app.v2("up", "-d")
        assert up.returncode == 1
        assert (
            "Error response from daemon: failed to set up container networking: driver failed "
            f"programming external connectivity on endpoint {app.project}-web-1 ("
        ) in up.stderr, up.stderr
        assert (
            f"failed to bind host port for 127.0.0.1:{app.port}:" in up.stderr
            and "address already in use" in up.stderr
        ), up.stderr
        web = app.containers()["web-1"]
        assert web["State"] == "created"
        # dockerd's status for it: a system error, not the client's
        r = app.daemon.request("POST", f"/containers/{web['Id']}/start")
        assert r.status == 500 and "address already in use" in r.message, (r.status, r.body)
        fp = app.footprint()
        ok(app.v2("down", "-v"))
        assert app.leftovers(fp) == []
    finally:
        holder.close()


def test_a_name_in_use_and_a_missing_image_are_dockerds_errors(app: App, daemon, unique):
    taken = f"{app.project}-store-1"
    cid = ok(daemon.dockyard("create", "--name", taken, "busybox", "true")).stdout.strip()
    try:
        up = app.v2("up", "-d")
        assert up.returncode == 1
        assert (
            f'Error response from daemon: Conflict. The container name "/{taken}" is already in '
            f'use by container "{cid}". You have to remove (or rename) that container to be able '
            "to reuse that name."
        ) in up.stderr, up.stderr
        fp = app.footprint()
        ok(app.v2("down", "-v"))
        assert app.leftovers(fp) == []
        # down took only what compose made
        assert daemon.request("GET", f"/containers/{cid}/json").status == 200
    finally:
        daemon.dockyard("rm", "-f", cid)

    missing = app.dir / "missing.yaml"
    image = unique("nosuchimage")
    missing.write_text(f"services:\n  store:\n    image: {image}:1\n    pull_policy: never\n")
    up = app.v2("up", "-d", files=(missing,))
    assert up.returncode == 1
    assert f"Error response from daemon: No such image: {image}:1" in up.stderr, up.stderr
    ok(app.v2("down", "-v", files=(missing,)))
    assert app.leftovers(app.footprint()) == []


@pytest.fixture
def restartable(daemon_factory, tmp_path) -> Iterator[App]:
    """The application on a daemon of its own, which the test may restart."""
    require_compose_v2()
    d = daemon_factory()
    d.import_busybox()
    a = App.copy(d, tmp_path)
    yield a
    if d.proc is not None and d.proc.poll() is None:
        a.force_down()


@pytest.mark.parametrize("tool", ["v2", "v1"])
def test_daemon_restart_under_the_application_and_data_surviving_down(restartable: App, tool: str):
    app = restartable
    if tool == "v1" and (missing := compose_v1_missing()):
        pytest.skip(missing)
    compose = app.v1 if tool == "v1" else app.v2
    up = ("up", "-d") if tool == "v1" else ("up", "-d", "--wait")  # 1.29 has no --wait
    ok(compose(*up))
    assert app.visit()["visits"] == 1
    d = app.daemon
    # A clean restart: dockerd stops the containers, and the ones with
    # `restart: unless-stopped` come back at its start (the one-shot migration does not).
    assert d.stop() == 0
    d.start()
    assert app.visit(timeout=60)["visits"] == 2, d.log_tail()
    states = {k: c["State"] for k, c in app.containers().items()}
    assert states == {"store-1": "running", "api-1": "running", "web-1": "running",
                      "migrate-1": "exited"}, states  # fmt: skip
    # The named volume outlives `down`; `down -v` takes it.
    ok(compose("down"))
    ok(compose(*up))
    assert app.visit()["visits"] == 3
    fp = app.footprint()
    ok(compose("down", "-v"))
    assert app.leftovers(fp) == []
    ok(compose(*up))
    assert app.visit()["visits"] == 1
    fp = app.footprint()
    ok(compose("down", "-v"))
    assert app.leftovers(fp) == []


def test_a_daemon_restart_in_the_middle_of_up(restartable: App):
    """The client sees the connection go; what `up` made before is listed and
    removed by `down`, nothing is half made."""
    app = restartable
    d = app.daemon
    env = app.v2_env()
    up = subprocess.Popen(
        [*app.v2_argv(), "up", "-d", "--wait"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    # Restart once the first container is made (up is then waiting for its health).
    deadline = time.monotonic() + 60
    while not app.containers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert d.stop() == 0
    d.start()
    out, _ = up.communicate(timeout=180)
    assert up.returncode != 0, out
    fp = app.footprint()
    assert fp.containers, "up made some containers before the restart"
    for c in app.containers().values():
        assert c["State"] in ("created", "running", "exited"), c
    ok(app.v2("down", "-v"))
    assert app.leftovers(fp) == []
    assert not os.listdir(Path(d.data_root) / "containers")


DOCKERD_SOCKET = "/var/run/docker.sock"


def test_the_same_file_on_dockerd_gives_the_same_application(tmp_path):
    """Where a dockerd runs (never started here) with a busybox image, the same binary
    and file give the same answers there."""
    require_compose_v2()
    try:
        conn = UnixHTTPConnection(DOCKERD_SOCKET, timeout=5)
        conn.request("GET", "/images/busybox/json")
        resp = conn.getresponse()
        resp.read()
        server = resp.getheader("Server") or ""
    except OSError as e:
        pytest.skip(f"no dockerd to compare with ({DOCKERD_SOCKET}: {e.strerror})")
    if not server.startswith("Docker/"):
        pytest.skip(f"{DOCKERD_SOCKET} answers as {server!r}, not dockerd")
    if resp.status != 200:
        pytest.skip("dockerd holds no busybox image (these tests pull nothing)")

    class Dockerd:
        host = f"unix://{DOCKERD_SOCKET}"
        env = {**os.environ, "DOCKER_HOST": host, "DOCKYARD_HOST": host}

        def dockyard(self, *args: str, timeout: float = 60, env: dict | None = None):
            return subprocess.run(
                [sys.executable, "-m", "dockyard", *args], capture_output=True, text=True,
                timeout=timeout, env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    app = App.copy(Dockerd(), tmp_path)
    try:
        ok(app.v2("up", "-d", "--wait"))
        first = app.visit()
        assert first["visits"] == 1 and first["schema"] == 2, first
        assert app.visit()["visits"] == 2
    finally:
        ok(app.v2("down", "-v"))
