"""Volumes through the real docker CLI and the Docker SDK for Python."""

from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import docker.errors
import pytest


@pytest.fixture(scope="module")
def client(daemon) -> Iterator[docker.DockerClient]:
    c = docker.from_env(environment=daemon.env, timeout=60)
    yield c
    c.close()


@pytest.mark.docker_cli
def test_docker_volume_commands(daemon, unique) -> None:
    vol = unique("dv")
    proc = daemon.docker("volume", "create", "--label", "k=v", vol)
    assert (proc.returncode, proc.stdout) == (0, vol + "\n"), proc.stderr
    try:
        proc = daemon.docker("volume", "ls")
        assert proc.stdout.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
        assert any(line.split() == ["local", vol] for line in proc.stdout.splitlines())
        proc = daemon.docker(
            "volume", "ls", "-q", "--filter", "label=k=v", "--filter", f"name={vol}"
        )
        assert proc.stdout.split() == [vol]
        info = json.loads(daemon.docker("volume", "inspect", vol).stdout)[0]
        assert info["Labels"] == {"k": "v"} and info["Driver"] == "local"
        proc = daemon.docker(
            "run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo 1 > /data/f"
        )
        assert proc.returncode == 0, proc.stderr
        proc = daemon.docker(
            "run", "--rm", "--mount", f"type=volume,source={vol},target=/m,readonly", "busybox",
            "sh", "-c", "cat /m/f; touch /m/g",
        )  # fmt: skip
        assert proc.stdout == "1\n" and "Read-only file system" in proc.stderr
        proc = daemon.docker("volume", "create", "bad/name")
        assert proc.returncode == 1
        assert '"bad/name" includes invalid characters for a local volume name' in proc.stderr
        proc = daemon.docker("volume", "prune", "-f", "-a", "--filter", "label=k=other")
        assert proc.returncode == 0, proc.stderr
        assert vol in daemon.docker("volume", "ls", "-q").stdout.split()
    finally:
        assert daemon.docker("volume", "rm", vol).returncode == 0


@pytest.mark.docker_cli
def test_volume_prune_by_an_old_client_takes_named_volumes_too(daemon, unique) -> None:
    """API 1.42 made prune take only anonymous volumes; dockerd keeps the old answer
    (every unused volume) for clients that speak an older version."""
    label = f"prune={unique('old')}"
    vol = unique("named")
    assert daemon.docker("volume", "create", "--label", label, vol).returncode == 0
    try:
        proc = daemon.docker("volume", "prune", "-f", "--filter", f"label={label}")
        assert proc.returncode == 0, proc.stderr
        assert vol in daemon.docker("volume", "ls", "-q").stdout.split()
        old = {"DOCKER_API_VERSION": "1.41"}
        proc = daemon.docker("volume", "prune", "-f", "--filter", f"label={label}", env=old)
        assert proc.returncode == 0, proc.stderr
        assert vol in proc.stdout
        assert vol not in daemon.docker("volume", "ls", "-q").stdout.split()
    finally:
        daemon.docker("volume", "rm", "-f", vol)


@pytest.mark.docker_cli
def test_docker_run_rm_removes_anonymous_volumes(daemon, unique) -> None:
    before = set(daemon.docker("volume", "ls", "-q").stdout.split())
    named = unique("kept")
    proc = daemon.docker("run", "--rm", "-v", "/anon", "-v", f"{named}:/n", "busybox", "true")
    assert proc.returncode == 0, proc.stderr
    after = set(daemon.docker("volume", "ls", "-q").stdout.split())
    assert after - before == {named}
    assert daemon.docker("volume", "rm", named).returncode == 0


def test_sdk_volumes(client, unique) -> None:
    name = unique("sdk")
    v = client.volumes.create(name, labels={"a": "b"})
    try:
        assert v.name == name and v.attrs["Labels"] == {"a": "b"}
        assert name in [x.name for x in client.volumes.list(filters={"label": "a=b"})]
        out = client.containers.run(
            "busybox",
            "sh -c 'echo sdk > /v/f; cat /v/f'",
            volumes={name: {"bind": "/v", "mode": "rw"}},
            remove=True,
        )
        assert out == b"sdk\n"
        c = client.containers.create("busybox", "true", volumes=[f"{name}:/v"])
        try:
            with pytest.raises(docker.errors.APIError) as exc:
                client.volumes.get(name).remove()
            assert exc.value.status_code == 409
            assert "volume is in use" in str(exc.value)
        finally:
            c.remove()
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get("no-such-volume-sdk")
        assert client.volumes.prune(filters={"label": "a=b"})["VolumesDeleted"] in (None, [])
    finally:
        client.volumes.get(name).remove()
    assert name not in [x.name for x in client.volumes.list()]
