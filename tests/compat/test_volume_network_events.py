"""Volume and network events as `docker events` and the Docker SDK read them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import docker
import pytest


@pytest.fixture(scope="module")
def client(daemon) -> Iterator[docker.DockerClient]:
    c = docker.from_env(environment=daemon.env, timeout=60)
    yield c
    c.close()


def cli_events(daemon, since: str, *filters: str) -> list[dict]:
    # The CLI turns `--until 0s` into whole seconds: an event of this second would be
    # left out. Up to the next second instead (the stream stays open until then).
    until = str(int(time.time()) + 1)
    args = ["events", "--since", since, "--until", until, "--format", "{{json .}}"]
    for f in filters:
        args += ["--filter", f]
    proc = daemon.docker(*args)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.docker_cli
def test_docker_events_type_volume(daemon, unique):
    """create, mount (with the mount's destination and mode), unmount, destroy."""
    vol, box = unique("evv"), unique("evbox")
    since = f"{time.time() - 1:.3f}"
    assert daemon.docker("volume", "create", vol).returncode == 0
    created = daemon.docker("create", "--name", box, "-v", f"{vol}:/data:ro", "busybox", "true")
    assert created.returncode == 0, created.stderr
    cid = created.stdout.strip()
    try:
        ran = daemon.docker("start", "-a", box)
        assert ran.returncode == 0, ran.stderr
    finally:
        assert daemon.docker("rm", "-f", box).returncode == 0
        assert daemon.docker("volume", "rm", vol).returncode == 0
    events = cli_events(daemon, since, "type=volume", f"volume={vol}")
    got = [(e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in events]
    assert got == [
        ("volume", "create", vol, {"driver": "local"}),
        (
            "volume",
            "mount",
            vol,
            {
                "container": cid,
                "destination": "/data",
                "driver": "local",
                "propagation": "",
                "read/write": "false",
            },
        ),
        ("volume", "unmount", vol, {"container": cid, "driver": "local"}),
        ("volume", "destroy", vol, {"driver": "local"}),
    ]
    assert all(e["scope"] == "local" and e["timeNano"] for e in events)


@pytest.mark.docker_cli
def test_docker_events_network_none_connects_and_disconnects(daemon, unique):
    box = unique("evnone")
    since = f"{time.time() - 1:.3f}"
    created = daemon.docker("create", "--name", box, "--network", "none", "busybox", "true")
    assert created.returncode == 0, created.stderr
    cid = created.stdout.strip()
    try:
        assert daemon.docker("start", "-a", box).returncode == 0
    finally:
        daemon.docker("rm", "-f", box)
    none_id = daemon.docker("network", "inspect", "-f", "{{.Id}}", "none").stdout.strip()
    events = [
        e
        for e in cli_events(daemon, since, "type=network", "network=none")
        if e["Actor"]["Attributes"].get("container") == cid
    ]
    assert [(e["Action"], e["Actor"]["ID"]) for e in events] == [
        ("connect", none_id),
        ("disconnect", none_id),
    ]
    assert events[0]["Actor"]["Attributes"] == {"container": cid, "name": "none", "type": "null"}


def test_sdk_network_events_create_connect_disconnect_destroy(client, unique):
    name = unique("evnet")
    since = int(time.time()) - 1
    net = client.networks.create(name)
    box = client.containers.run("busybox", ["sleep", "300"], detach=True, network=name)
    try:
        net.disconnect(box)  # running: its interface goes now
        net.connect(box)
    finally:
        box.remove(force=True)  # its exit disconnects it once more
        net.remove()
    until = int(time.time()) + 1
    events = list(
        client.events(
            since=since, until=until, filters={"type": "network", "network": name}, decode=True
        )
    )
    assert [e["Action"] for e in events] == [
        "create",
        "connect",
        "disconnect",
        "connect",
        "disconnect",
        "destroy",
    ]
    assert {e["Actor"]["ID"] for e in events} == {net.id}
    assert events[0]["Actor"]["Attributes"] == {"name": name, "type": "bridge"}
    for e in events[1:-1]:
        assert e["Actor"]["Attributes"] == {"container": box.id, "name": name, "type": "bridge"}
