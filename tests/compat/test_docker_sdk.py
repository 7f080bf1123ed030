"""The Docker SDK for Python, pointed at our socket the way users do (DOCKER_HOST)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import docker
import docker.errors
import pytest


@pytest.fixture(scope="module")
def client(daemon) -> Iterator[docker.DockerClient]:
    c = docker.from_env(environment=daemon.env, timeout=60)
    yield c
    c.close()


def test_ping(client):
    assert client.ping() is True


def test_version(client):
    v = client.version()
    assert v["Os"] == "linux"
    assert re.match(r"^1\.\d+$", v["ApiVersion"]), v
    assert v["Version"]
    # The SDK negotiated a version the server accepts.
    assert client.api.api_version.startswith("1.")


def test_run_remove_returns_output(client):
    assert client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"


def test_run_nonzero_exit_raises_container_error(client):
    with pytest.raises(docker.errors.ContainerError) as err:
        client.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 2"], remove=True)
    assert err.value.exit_status == 2
    assert b"oops" in (err.value.stderr or b"")


def test_detached_wait_inspect_list_remove(client, unique):
    name = unique("sdk")
    c = client.containers.run("busybox", ["sh", "-c", "echo line; exit 7"], detach=True, name=name)
    assert re.match(r"^[0-9a-f]{64}$", c.id)
    result = c.wait(timeout=30)
    assert result["StatusCode"] == 7

    got = client.containers.get(name)
    assert got.id == c.id
    assert got.status == "exited"
    assert got.attrs["Name"] == f"/{name}"
    assert got.attrs["State"]["ExitCode"] == 7
    assert got.attrs["Config"]["Cmd"] == ["sh", "-c", "echo line; exit 7"]
    assert got.logs() == b"line\n"

    assert c.id in [x.id for x in client.containers.list(all=True)]
    assert c.id not in [x.id for x in client.containers.list()]
    assert name in [x.name for x in client.containers.list(all=True, filters={"name": name})]

    got.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(name)


def test_running_container_listed_then_stopped(client, unique):
    c = client.containers.run("busybox", ["sleep", "30"], detach=True, name=unique("sdk-run"))
    try:
        assert c.id in [x.id for x in client.containers.list()]
        c.reload()
        assert c.status == "running"
        assert c.attrs["State"]["Pid"] > 0
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited"
    finally:
        c.remove(force=True)


def test_images_list_and_get(client):
    tags = [t for img in client.images.list() for t in img.tags]
    assert "busybox:latest" in tags
    img = client.images.get("busybox")
    assert img.id.startswith("sha256:")
    assert "busybox:latest" in img.tags
    assert img.attrs["Config"]["Cmd"] == ["sh"]


def test_unknown_container_is_not_found(client):
    with pytest.raises(docker.errors.NotFound) as err:
        client.containers.get("no-such-container-dky")
    assert "No such container: no-such-container-dky" in str(err.value)


def test_unknown_image_raises_api_error(client):
    # ImageNotFound and NotFound both derive from APIError; the SDK tries a
    # pull after the 404, which must fail cleanly too.
    with pytest.raises(docker.errors.APIError):
        client.containers.run("no-such-image-dky", "true", remove=True)


def test_file_bind_mount(client, daemon, unique):
    src = daemon.base / unique("hostfile")
    src.write_text("bound\n")
    out = client.containers.run(
        "busybox", "cat /h", volumes={str(src): {"bind": "/h", "mode": "ro"}}, remove=True
    )
    assert out == b"bound\n"


def test_published_ports_through_the_sdk(client, unique):
    import time
    import urllib.request

    script = "mkdir /www && echo sdk > /www/index.html && exec httpd -f -p 80 -h /www"
    c = client.containers.run(
        "busybox",
        ["sh", "-c", script],
        detach=True,
        name=unique("sdkport"),
        ports={"80/tcp": ("127.0.0.1", None)},
    )
    try:
        c.reload()
        (binding,) = c.ports["80/tcp"]
        assert binding["HostIp"] == "127.0.0.1"
        port = int(binding["HostPort"])
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as r:
                    assert r.read() == b"sdk\n"
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        ip = c.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        assert ip and c.attrs["NetworkSettings"]["IPAddress"] == ip
    finally:
        c.remove(force=True)
