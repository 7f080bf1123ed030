"""The Docker SDK's exec_run, exec API errors, and docker CLI's exec/top/stats/events."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import docker
import docker.errors
import pytest


@pytest.fixture(scope="module")
def client(daemon) -> Iterator[docker.DockerClient]:
    c = docker.from_env(environment=daemon.env, timeout=60)
    yield c
    c.close()


@pytest.fixture
def box(client, unique):
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, name=unique("sdkx"))
    yield c
    c.remove(force=True)


def test_exec_run_output_and_exit_code(box):
    res = box.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert res.exit_code == 4
    assert res.output == b"out\nerr\n"
    demux = box.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert demux.output == (b"out\n", b"err\n")


def test_exec_code_survives_stdin_closed_at_once(client, box):
    """docker exec -i with an empty stdin (compose exec -T does this): the client
    closes stdin at once, the exec's monitor may end with that command unread,
    and the kernel resets the link; the exit event sent before must still count
    (it was lost about once in 25: ExitCode 255, "monitor exited unexpectedly")."""
    api = client.api
    codes = []
    for _ in range(60):
        e = api.exec_create(box.id, ["sh", "-c", "exit 3"], stdin=True)
        sock = api.exec_start(e["Id"], socket=True)._sock
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
        sock.close()
        codes.append(api.exec_inspect(e["Id"])["ExitCode"])
    assert codes == [3] * 60


def test_exec_run_options(box):
    res = box.exec_run(
        "sh -c 'id -u; pwd; echo $X'", user="nobody", workdir="/tmp", environment={"X": "y"}
    )
    assert res.exit_code == 0
    assert res.output == b"65534\n/tmp\ny\n"


def test_exec_run_tty_and_stream(box):
    res = box.exec_run("tty", tty=True)
    assert res.exit_code == 0
    assert res.output.startswith(b"/dev/pts/")
    streamed = box.exec_run(["sh", "-c", "echo a; echo b"], stream=True)
    assert b"".join(streamed.output) == b"a\nb\n"


def test_exec_inspect_shape(client, box):
    api = client.api
    ex = api.exec_create(box.id, ["sh", "-c", "exit 9"])
    before = api.exec_inspect(ex["Id"])
    assert before["Running"] is False and before["ExitCode"] is None
    assert before["ContainerID"] == box.id
    assert before["ProcessConfig"] == {
        "arguments": ["-c", "exit 9"], "entrypoint": "sh", "privileged": False, "tty": False, "user": "",
    }  # fmt: skip
    api.exec_start(ex["Id"])
    after = api.exec_inspect(ex["Id"])
    assert after["ExitCode"] == 9 and after["Running"] is False
    with pytest.raises(docker.errors.APIError) as err:
        api.exec_start(ex["Id"])
    assert err.value.status_code == 409


def test_exec_errors(client, box, unique):
    api = client.api
    with pytest.raises(docker.errors.NotFound):
        api.exec_inspect("nosuchexec")
    with pytest.raises(docker.errors.NotFound):
        api.exec_create("no-such-container-x", "true")
    with pytest.raises(docker.errors.APIError) as err:
        api.exec_create(box.id, [])
    assert err.value.status_code == 400
    stopped = client.containers.create("busybox", "true", name=unique("stopped"))
    try:
        with pytest.raises(docker.errors.APIError) as err:
            api.exec_create(stopped.id, "true")
        assert err.value.status_code == 409
        assert f"container {stopped.id} is not running" in str(err.value)
    finally:
        stopped.remove(force=True)


def test_exec_dies_with_the_container(client, box):
    api = client.api
    ex = api.exec_create(box.id, ["sleep", "300"])
    api.exec_start(ex["Id"], detach=True)
    assert api.exec_inspect(ex["Id"])["Running"] is True
    assert api.inspect_container(box.id)["ExecIDs"] == [ex["Id"]]
    box.kill()
    for _ in range(100):
        if not api.exec_inspect(ex["Id"])["Running"]:
            break
        import time

        time.sleep(0.1)
    assert api.exec_inspect(ex["Id"])["ExitCode"] == 137


def test_top_via_sdk(box):
    top = box.top()
    assert "PID" in top["Titles"]
    assert any("sleep 300" in p[-1] for p in top["Processes"])


@pytest.mark.docker_cli
def test_docker_cli_exec_top_stats(daemon, box):
    proc = daemon.docker("exec", box.name, "sh", "-c", "echo hi; exit 3")
    assert proc.returncode == 3 and proc.stdout == "hi\n"
    proc = daemon.docker("exec", "-i", box.name, "cat", input="piped\n")
    assert proc.stdout == "piped\n"
    top = daemon.docker("top", box.name)
    assert top.returncode == 0, top.stderr
    assert "sleep 300" in top.stdout
    stats = daemon.docker("stats", "--no-stream", box.name)
    assert stats.returncode == 0, stats.stderr
    row = re.split(r"\s{2,}", stats.stdout.splitlines()[1].strip())
    assert row[1] == box.name and row[-1] == "1"
    events = daemon.docker(
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        f"container={box.name}",
        "--filter",
        "event=exec_die",
    )
    assert events.returncode == 0, events.stderr
    assert "exitCode=3" in events.stdout
    paused = daemon.docker("pause", box.name)
    assert paused.returncode == 0, paused.stderr
    refused = daemon.docker("exec", box.name, "true")
    assert refused.returncode != 0 and "paused" in refused.stderr
    assert daemon.docker("unpause", box.name).returncode == 0


@pytest.mark.docker_cli
def test_docker_cli_diff_rename_prune(daemon, client, unique):
    name, new = unique("dcli"), unique("dcli-new")
    run = daemon.docker(
        "run", "--name", name, "-l", f"t={name}", "busybox", "sh", "-c", "touch /added; rm /bin/vi"
    )
    assert run.returncode == 0, run.stderr
    diff = daemon.docker("diff", name)
    assert diff.returncode == 0, diff.stderr
    assert {"A /added", "C /bin", "D /bin/vi"} <= set(diff.stdout.splitlines())
    assert daemon.docker("rename", name, new).returncode == 0
    assert client.containers.get(new).name == new
    prune = daemon.docker("container", "prune", "-f", "--filter", f"label=t={name}")
    assert prune.returncode == 0, prune.stderr
    assert "Total reclaimed space:" in prune.stdout
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(new)


def test_exec_bad_input(client, box):
    api = client.api

    def create(body: dict) -> int:
        resp = api._post_json(api._url("/containers/{0}/exec", box.id), data=body)
        return resp.status_code

    assert create({"Cmd": []}) == 400
    assert create({}) == 400
    assert create({"Cmd": ["true"], "Env": ["=x"]}) == 400
    assert create({"Cmd": ["true"], "ConsoleSize": [1, 2, 3]}) == 400
    assert create({"Cmd": ["true"], "WorkingDir": "relative"}) == 400
    assert create({"Cmd": "true", "User": 5}) == 400  # a type error, not a 500
    # an unknown user: the start answers, the stream says why, the code is 126
    res = box.exec_run("true", user="nosuchuser")
    assert res.exit_code == 126
    assert b"nosuchuser" in res.output
    ex = api.exec_create(box.id, "true")
    with pytest.raises(docker.errors.APIError) as err:
        api.exec_resize(ex["Id"], height=10, width=10)
    assert err.value.status_code == 409
