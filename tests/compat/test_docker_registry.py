"""The real docker CLI's push / pull / login / logout, through our daemon, to a real registry."""

from __future__ import annotations

import base64
import json
import re

import pytest

from registry_server import RegistryServer

pytestmark = pytest.mark.docker_cli


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
