"""The real docker CLI's push / pull / login / logout, through our daemon, to a real registry."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from registry_server import RegistryServer

pytestmark = pytest.mark.docker_cli
DOCKER_CLI = shutil.which("docker")  # as tests/conftest.py finds it


@pytest.fixture(scope="module")
def registry():
    server = RegistryServer(users={"bob": "hunter2"})
    yield server
    server.stop()


def test_docker_login_push_pull_logout(daemon, registry, unique, tmp_path):
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
    name = f"{registry.host}/{unique('dk')}"
    assert daemon.docker("tag", "busybox", f"{name}:v1").returncode == 0

    proc = daemon.docker("push", f"{name}:v1", env=env)
    assert proc.returncode != 0
    assert "no basic auth credentials" in proc.stderr

    proc = daemon.docker(
        "login", "-u", "bob", "--password-stdin", registry.host, input="hunter2\n", env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "Login Succeeded" in proc.stdout
    auths = json.loads((tmp_path / "docker-config" / "config.json").read_text())["auths"]
    assert auths[registry.host]["auth"] == base64.b64encode(b"bob:hunter2").decode()

    proc = daemon.docker("push", f"{name}:v1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"The push refers to repository [{name}]" in proc.stdout
    digest = re.search(r"v1: digest: (sha256:[0-9a-f]{64}) size: \d+", proc.stdout)
    assert digest, proc.stdout

    image_id = daemon.docker("image", "inspect", "-f", "{{.Id}}", f"{name}:v1").stdout.strip()
    assert daemon.docker("rmi", f"{name}:v1").returncode == 0
    proc = daemon.docker("pull", f"{name}:v1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"Digest: {digest.group(1)}" in proc.stdout
    assert proc.stdout.splitlines()[-1] == f"{name}:v1"
    assert daemon.docker("image", "inspect", "-f", "{{.Id}}", f"{name}:v1").stdout.strip() == (
        image_id
    )
    proc = daemon.docker("run", "--rm", f"{name}:v1", "echo", "pulled")
    assert proc.stdout == "pulled\n", proc.stderr
    # docker run of a missing image pulls it through us, with the stored credentials.
    assert daemon.docker("rmi", f"{name}:v1").returncode == 0
    proc = daemon.docker("run", "--rm", f"{name}:v1", "echo", "auto", env=env)
    assert proc.stdout == "auto\n", proc.stderr
    assert f"Unable to find image '{name}:v1' locally" in proc.stderr

    proc = daemon.docker("logout", registry.host, env=env)
    assert proc.returncode == 0
    assert f"Removing login credentials for {registry.host}" in proc.stdout
    daemon.docker("rmi", f"{name}:v1")


def test_docker_pull_of_an_unknown_tag(daemon, registry, tmp_path):
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
    daemon.docker(
        "login", "-u", "bob", "--password-stdin", registry.host, input="hunter2\n", env=env
    )
    proc = daemon.docker("pull", f"{registry.host}/nothing/here:v9", env=env)
    assert proc.returncode == 1
    assert f"manifest for {registry.host}/nothing/here:v9 not found" in proc.stderr


@pytest.fixture(scope="module")
def open_registry():
    server = RegistryServer()
    yield server
    server.stop()


def _tty(daemon, *args: str) -> str:
    """The docker CLI on a pseudo-terminal (`script`), where it draws progress bars."""
    if shutil.which("script") is None:
        pytest.skip("script (util-linux) is not installed")
    if DOCKER_CLI is None:
        pytest.skip("the docker CLI is not installed")
    proc = subprocess.run(
        # 200 columns: the CLI draws bars from a width of 110 on.
        ["script", "-qefc", "stty cols 200; " + shlex.join([DOCKER_CLI, *args]), "/dev/null"],
        capture_output=True, text=True, timeout=120, env=daemon.env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_docker_cli_renders_our_per_layer_progress(daemon, open_registry, unique):
    name = f"{open_registry.host}/{unique('progress')}:v1"
    box = unique("box")
    # A second layer of 2 MB on busybox's: two layers to push and pull.
    proc = daemon.docker(
        "run", "--name", box, "busybox", "sh", "-c", "head -c 2000000 /dev/urandom > /blob"
    )
    assert proc.returncode == 0, proc.stderr
    assert daemon.docker("commit", box, name).returncode == 0
    daemon.docker("rm", box)
    screen = _tty(daemon, "push", name)
    assert re.search(r"Pushing \[=*>\s*\]\s+\S+/\S+", screen), screen
    # The new layer is pushed; busybox's too, or mounted if another test pushed it here.
    assert len(re.findall(r": (?:Pushed|Mounted from \S+) ", screen)) == 2, screen
    out = daemon.docker("push", name).stdout  # again: the registry has both
    preparing = [x.removesuffix(": Preparing") for x in out.splitlines() if x.endswith("Preparing")]
    assert len(preparing) == 2, out
    assert all(f"{i}: Layer already exists" in out for i in preparing), out

    daemon.docker("rmi", name)
    plain = daemon.docker("pull", name)
    assert plain.returncode == 0, plain.stderr
    pulled = [line.split(":")[0] for line in plain.stdout.splitlines() if ": Pull complete" in line]
    assert len(pulled) == 1, plain.stdout  # busybox's layer is still here
    assert plain.stdout.count(": Already exists") == 1, plain.stdout
    for ident in pulled:  # without a terminal: the state changes of each layer, in order
        states = [
            line.split(": ", 1)[1] for line in plain.stdout.splitlines() if line.startswith(ident)
        ]
        assert states == [
            "Pulling fs layer",
            "Verifying Checksum",
            "Download complete",
            "Pull complete",
        ], plain.stdout

    # On a terminal: bars redrawn in place, as docker draws them for dockerd.
    daemon.docker("rmi", name)
    screen = _tty(daemon, "pull", name)
    assert re.search(r"Downloading \[=*>\s*\]\s+\S+/\S+", screen), screen
    assert re.search(r"Extracting \[=*>\s*\]\s+\S+/\S+", screen), screen
    assert "\x1b[" in screen  # cursor movement: lines updated in place
    retagged = f"{open_registry.host}/{unique('progress2')}:v1"
    daemon.docker("tag", name, retagged)
    screen = _tty(daemon, "push", retagged)
    assert "Mounted from" in screen or "Layer already exists" in screen, screen
    daemon.docker("rmi", name, retagged)


DOCKERD_HOST = os.environ.get("DOCKYARD_TEST_DOCKERD_HOST", "unix:///var/run/docker.sock")


def _dockerd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER_CLI or "docker", "-H", DOCKERD_HOST, *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def dockerd():
    """A dockerd that already runs (never started here); skipped otherwise."""
    if DOCKER_CLI is None:
        pytest.skip("the docker CLI is not installed")
    try:
        answers = _dockerd("version", "-f", "{{.Server.Version}}").returncode == 0
    except subprocess.TimeoutExpired:
        answers = False
    if not answers:
        pytest.skip(f"no dockerd answers on {DOCKERD_HOST} (DOCKYARD_TEST_DOCKERD_HOST)")
    return _dockerd


def test_dockerd_pulls_what_we_pushed_and_we_pull_what_it_pushed(
    daemon, open_registry, dockerd, unique
):
    ours = f"{open_registry.host}/{unique('registry-ours')}:v1"
    theirs = f"{open_registry.host}/{unique('registry-theirs')}:v1"
    box = unique("box")
    proc = daemon.docker("run", "--name", box, "busybox", "sh", "-c", "echo ours > /mark")
    assert proc.returncode == 0, proc.stderr
    assert daemon.docker("commit", box, ours).returncode == 0
    daemon.docker("rm", box)
    try:
        assert daemon.docker("push", ours).returncode == 0
        proc = dockerd("pull", ours)
        assert proc.returncode == 0, proc.stderr
        proc = dockerd("run", "--rm", "--network", "none", ours, "cat", "/mark")
        assert proc.stdout == "ours\n", proc.stderr
        # And back: dockerd's push (schema 2, its own gzip) pulled and run by us.
        assert dockerd("tag", ours, theirs).returncode == 0
        assert dockerd("push", theirs).returncode == 0
        daemon.docker("rmi", ours)
        proc = daemon.docker("pull", theirs)
        assert proc.returncode == 0, proc.stderr
        proc = daemon.docker("run", "--rm", theirs, "cat", "/mark")
        assert proc.stdout == "ours\n", proc.stderr
    finally:
        dockerd("rmi", ours, theirs)
        daemon.docker("rmi", ours, theirs)
