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
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from compose_app import (
    App,
    EventWatch,
    ForeignDaemon,
    close_bridge_forwarding,
    compose_v1_missing,
    open_bridge_forwarding,
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


def test_compose_v2_up_build_builds_the_front_keeps_what_is_cached_and_rebuilds_a_change(
    app: App,
):
    """`up --build`: the front is an image built from web/Dockerfile (no bind mount); a second
    `up --build` with no change builds from the cache and recreates nothing; a changed
    file of the front's build context rebuilds it and recreates web alone."""
    p = app.project
    up = ok(app.v2("up", "-d", "--build", "--wait"))
    out = up.stdout + up.stderr
    assert f"Successfully tagged {p}-web:latest" in out, out
    image = app.image(f"{p}-web")
    assert image is not None, out
    app.note_build(f"{p}-web")
    # compose's label on the image, and the built image (by id) in the container's labels
    assert image["Config"]["Labels"] == {"com.docker.compose.image.builder": "classic"}
    assert image["Config"]["Cmd"] == ["httpd", "-f", "-p", "80", "-h", "/www"]
    web = app.daemon.request("GET", f"/containers/{p}-web-1/json").json()
    assert web["Image"] == image["Id"] and web["Mounts"] == []
    assert web["Config"]["Labels"]["com.docker.compose.image"] == image["Id"]
    # the page and the CGI script come from the image
    assert "<h1>Dockyard example</h1>" in app.get("/")
    assert app.visit()["visits"] == 1

    before = ids(app)
    again = ok(app.v2("up", "-d", "--build", "--wait"))
    out = again.stdout + again.stderr
    assert out.count(" ---> Using cache") == 5, out  # COPY, COPY, EXPOSE, CMD, compose's LABEL
    assert "Recreate" not in out and "Creating" not in out, out
    assert app.image(f"{p}-web")["Id"] == image["Id"]
    assert ids(app) == before

    index = app.dir / "web" / "index.html"
    index.write_text(index.read_text().replace("<h1>Dockyard example</h1>", "<h1>Rebuilt</h1>"))
    changed = ok(app.v2("up", "-d", "--build", "--wait"))
    out = changed.stdout + changed.stderr
    rebuilt = app.image(f"{p}-web")
    assert rebuilt is not None and rebuilt["Id"] != image["Id"], out
    app.note_build(f"{p}-web")
    now = ids(app)
    assert now["web-1"] != before["web-1"], out
    assert {k: v for k, v in now.items() if k != "web-1"} == {
        k: v for k, v in before.items() if k != "web-1"
    }, out
    assert "<h1>Rebuilt</h1>" in app.get("/")
    assert app.visit()["visits"] == 2

    # down --rmi local: the built image goes with the rest (its untagged build steps stay,
    # as on dockerd: compose deletes it with noprune=1)
    fp = app.footprint()
    down = ok(app.v2("down", "--rmi", "local", "-v"))
    assert f"Image {p}-web:latest  Removed" in down.stderr, down.stderr
    assert app.image(f"{p}-web") is None
    assert app.leftovers(fp) == [], down.stderr
    assert app.image("busybox") is not None


def test_compose_1_29_builds_the_front_and_recreates_it_alone_when_it_changes(app: App):
    missing = compose_v1_missing()
    if missing:
        pytest.skip(missing)
    p = app.project
    # docker-py's POST /build (not `docker build`): the API parameters 1.29 sends itself.
    # API 1.44: 1.29 reads the image's ContainerConfig to recreate a container, which
    # dockerd (26 on) and Dockyard leave out from API 1.45 on (KeyError: 'ContainerConfig').
    env = {"COMPOSE_DOCKER_CLI_BUILD": "0", "COMPOSE_API_VERSION": "1.44"}
    up = ok(app.v1("up", "-d", "--build", env=env))
    assert f"Successfully tagged {p}_web:latest" in up.stdout + up.stderr, up.stderr
    app.note_build(f"{p}_web")
    assert "<h1>Dockyard example</h1>" in app.get("/")
    assert app.visit()["visits"] == 1
    before = ids(app)
    again = ok(app.v1("up", "-d", "--build", env=env))
    for svc in ("store", "api", "web"):
        assert f"{p}_{svc}_1 is up-to-date" in again.stderr, again.stderr
    index = app.dir / "web" / "index.html"
    index.write_text(index.read_text().replace("<h1>Dockyard example</h1>", "<h1>Rebuilt</h1>"))
    changed = ok(app.v1("up", "-d", "--build", env=env))
    app.note_build(f"{p}_web")
    assert f"Recreating {p}_web_1" in changed.stderr, changed.stderr
    for svc in ("store", "api"):
        assert f"{p}_{svc}_1 is up-to-date" in changed.stderr, changed.stderr
    now = ids(app)
    assert now["web-1"] != before["web-1"]
    assert now["store-1"] == before["store-1"] and now["api-1"] == before["api-1"]
    assert "<h1>Rebuilt</h1>" in app.get("/")
    assert app.visit()["visits"] == 2
    fp = app.footprint()
    down = ok(app.v1("down", "--rmi", "local", "-v", env=env))
    assert f"Removing image {p}_web" in down.stderr, down.stderr
    assert app.image(f"{p}_web") is None
    assert app.leftovers(fp) == [], down.stderr


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
    env = app.env()
    assert env["DOCKER_BUILDKIT"] == "0"  # as the README tells `docker compose` users
    f = ["-f", str(app.file)]
    assert "v2.40.3" in daemon.docker("compose", "version", env=env).stdout
    up = ok(daemon.docker("compose", *f, "up", "-d", "--build", "--wait", env=env, timeout=180))
    assert f"Successfully tagged {app.project}-web:latest" in up.stdout + up.stderr
    app.note_build(f"{app.project}-web")
    assert app.visit()["schema"] == 2
    fp = app.footprint()
    ok(daemon.docker("compose", *f, "down", "--rmi", "local", "-v", env=env, timeout=120))
    assert app.image(f"{app.project}-web") is None
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


def _all_images(app: App) -> set[str]:
    return {i["Id"] for i in app.daemon.request("GET", "/images/json?all=1").json()}


def _all_containers(app: App) -> dict[str, dict]:
    return {c["Id"]: c for c in app.daemon.request("GET", "/containers/json?all=1").json()}


@pytest.mark.parametrize("tool", ["v2", "v1"])
def test_a_dockerfile_error_in_the_front_is_the_daemons_and_down_leaves_nothing(
    app: App, tool: str
):
    """The build fails before anything of the project is made: compose prints the daemon's
    error (the Dockerfile and its line, or the failing command and its code) and exits
    with it, and `down` leaves nothing. A failing RUN keeps its stopped container, as
    dockerd's classic builder does without forcerm (compose sends none)."""
    if tool == "v1" and (missing := compose_v1_missing()):
        pytest.skip(missing)
    compose = app.v1 if tool == "v1" else app.v2
    dockerfile = app.dir / "web" / "Dockerfile"
    good = dockerfile.read_text()
    assert good.splitlines()[5] == "EXPOSE 80"  # line 6
    cases = [
        (
            good.replace("EXPOSE 80\n", "EXPOSE 80\nFROBNICATE /www\n"),
            1,
            # refused before any output: the answer's status, printed as dockerd's
            ("Error response from daemon: " if tool == "v2" else "")
            + "dockerfile parse error line 7: unknown instruction: FROBNICATE",
        ),
        (
            good.replace("COPY index.html", "COPY nosuch.html"),
            1,
            "Dockerfile:4: COPY failed: file not found in build context or excluded by "
            ".dockerignore: stat nosuch.html: file does not exist",
        ),
        (
            good.replace("EXPOSE 80\n", "EXPOSE 80\nRUN echo failing-step; exit 3\n"),
            3 if tool == "v2" else 1,
            "The command '/bin/sh -c echo failing-step; exit 3' returned a non-zero code: 3",
        ),
    ]
    images_before = _all_images(app)
    containers_before = set(_all_containers(app))
    try:
        for text, code, message in cases:
            dockerfile.write_text(text)
            up = compose("up", "-d", "--build")
            out = up.stdout + up.stderr
            assert up.returncode == code, out
            assert message in out, out
            if tool == "v1":
                assert "Service 'web' failed to build" in out, out
            fp = app.footprint()
            # v2 builds first; 1.29 makes the network and the volume, then builds
            assert fp.containers == set() and (tool == "v1" or not fp.networks), out
            assert app.image(f"{app.project}-web") is None
            assert app.image(f"{app.project}_web") is None
            ok(compose("down", "-v"))
            assert app.leftovers(fp) == []
        # the failed RUN's container, stopped with the command's code, not compose's
        left = {k: c for k, c in _all_containers(app).items() if k not in containers_before}
        assert [(c["Command"], c["State"]) for c in left.values()] == [
            ("/bin/sh -c 'echo failing-step; exit 3'", "exited")
        ], left
        assert not any(
            k.startswith("com.docker.compose") for c in left.values() for k in c["Labels"]
        )
    finally:
        for cid in set(_all_containers(app)) - containers_before:
            app.daemon.request("DELETE", f"/containers/{cid}?force=1")
        # the steps before the failure, kept as dockerd keeps them (the build cache)
        for image_id in _all_images(app) - images_before:
            app.daemon.request("DELETE", f"/images/{image_id}?force=1")


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


def _history(app: App, ref: str) -> list[str]:
    """The image's history as `docker history` shows CREATED BY, with the digests of COPY
    sources (how each engine sums the context's files) left out."""
    rows = app.daemon.request("GET", f"/images/{ref}/history").json()
    return [re.sub(r"(file|dir):[0-9a-f]{64}", r"\1:*", r["CreatedBy"]) for r in rows]


def test_the_same_file_on_dockerd_gives_the_same_application(app: App, tmp_path):
    """Where a dockerd runs already (never started here: $DOCKYARD_TEST_DOCKERD_HOST, default
    the system's socket) with a busybox image, the same binary and file give the same
    application there as here: the front built from its Dockerfile into the same image
    config and history, the same answers, a second `up --build` that keeps everything."""
    require_compose_v2()
    dockerd = ForeignDaemon.dockerd()
    theirs = App.copy(dockerd, tmp_path / "dockerd")
    apps = {"dockyard": app, "dockerd": theirs}
    opened: list[list[str]] = []
    try:
        for a in apps.values():
            ok(a.v2("up", "-d", "--build", "--wait"))
            a.note_build(f"{a.project}-web")
        opened = open_bridge_forwarding(theirs.footprint().bridges)
        for name, a in apps.items():
            first = a.visit()
            assert first["visits"] == 1 and first["schema"] == 2, (name, first)
            assert a.visit()["visits"] == 2, name
        assert app.get("/") == theirs.get("/")
        ours, their = (a.image(f"{a.project}-web") for a in apps.values())
        assert ours is not None and their is not None
        for key in ("Cmd", "Entrypoint", "Env", "ExposedPorts", "Labels", "WorkingDir", "User"):
            assert ours["Config"][key] == their["Config"][key], key
        assert (
            _history(app, f"{app.project}-web")[:5] == _history(theirs, f"{theirs.project}-web")[:5]
        )
        # the same labels on the containers, each naming its built image
        for svc in ("store", "migrate", "api", "web"):
            labels = [
                a.daemon.request("GET", f"/containers/{a.project}-{svc}-1/json").json()["Config"][
                    "Labels"
                ]
                for a in apps.values()
            ]
            assert set(labels[0]) == set(labels[1]), svc
        for a, image in ((app, ours), (theirs, their)):
            web = a.daemon.request("GET", f"/containers/{a.project}-web-1/json").json()
            assert web["Config"]["Labels"]["com.docker.compose.image"] == image["Id"]
        # nothing changed: both build from their cache and recreate nothing
        for name, a in apps.items():
            before = ids(a)
            again = ok(a.v2("up", "-d", "--build", "--wait"))
            out = again.stdout + again.stderr
            assert "Recreate" not in out and ids(a) == before, (name, out)
        for name, a in apps.items():
            fp = a.footprint()
            ok(a.v2("down", "--rmi", "local", "-v"))
            assert a.image(f"{a.project}-web") is None, name
            close_bridge_forwarding(opened if a is theirs else [])
            assert a.leftovers(fp) == [], name
    finally:
        close_bridge_forwarding(opened)
        theirs.force_down()
