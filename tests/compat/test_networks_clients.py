"""/networks through real clients: the docker CLI and the Docker SDK for Python."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import docker
import docker.errors
import pytest

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def client(daemon) -> Iterator[docker.DockerClient]:
    c = docker.from_env(environment=daemon.env, timeout=60)
    yield c
    c.close()


def test_docker_cli_network_verbs(daemon, unique):
    name, box = unique("dnet"), unique("dbox")
    try:
        created = daemon.docker(
            "network", "create", "--subnet", "10.233.0.0/24", "--label", "k=v", name
        )
        assert created.returncode == 0, created.stderr
        nid = created.stdout.strip()
        assert HEX64.match(nid)
        ls = daemon.docker("network", "ls", "--filter", f"name={name}")
        assert ls.stdout.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        assert ls.stdout.splitlines()[1].split() == [nid[:12], name, "bridge", "local"]
        info = json.loads(daemon.docker("network", "inspect", name).stdout)[0]
        assert info["IPAM"]["Config"][0]["Subnet"] == "10.233.0.0/24"
        assert info["Labels"] == {"k": "v"}

        run = daemon.docker("run", "-d", "--name", box, "--network", name, "--ip", "10.233.0.40",
                            "--network-alias", "bx", "busybox", "sleep", "300")  # fmt: skip
        assert run.returncode == 0, run.stderr
        look = daemon.docker("run", "--rm", "--network", name, "busybox", "nslookup", "bx")
        assert "Address: 10.233.0.40" in look.stdout, look.stdout + look.stderr
        used = daemon.docker("network", "rm", name)
        assert used.returncode == 1 and "has active endpoints" in used.stderr
        assert daemon.docker("network", "disconnect", name, box).returncode == 0
        assert daemon.docker("network", "connect", "--alias", "again", name, box).returncode == 0
        look = daemon.docker("run", "--rm", "--network", name, "busybox", "nslookup", "again")
        assert "Address: 10.233.0." in look.stdout, look.stdout
        daemon.docker("rm", "-f", box)
        rm = daemon.docker("network", "rm", name)
        assert rm.returncode == 0 and rm.stdout.strip() == name
    finally:
        daemon.docker("rm", "-f", box)
        daemon.docker("network", "rm", name)


def test_docker_sdk_networks(client, unique):
    name = unique("snet")
    net = client.networks.create(
        name,
        driver="bridge",
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.234.0.0/24")]),
        labels={"sdk": "yes"},
    )
    box = None
    try:
        assert HEX64.match(net.id)
        assert [n.name for n in client.networks.list(names=[name])] == [name]
        assert any(n.id == net.id for n in client.networks.list(filters={"label": "sdk=yes"}))
        got = client.networks.get(net.id[:12])
        assert got.attrs["IPAM"]["Config"][0]["Subnet"] == "10.234.0.0/24"
        with pytest.raises(docker.errors.APIError) as err:
            client.networks.create(name)
        assert err.value.response.status_code == 409

        box = client.containers.run("busybox", ["sleep", "300"], detach=True)
        net.connect(box, aliases=["sdkbox"], ipv4_address="10.234.0.9")
        net.reload()
        assert box.id in net.attrs["Containers"]
        assert net.attrs["Containers"][box.id]["IPv4Address"] == "10.234.0.9/24"
        box.reload()
        assert box.attrs["NetworkSettings"]["Networks"][name]["IPAddress"] == "10.234.0.9"
        out = client.containers.run("busybox", ["nslookup", "sdkbox"], network=name, remove=True)
        assert b"Address: 10.234.0.9" in out
        with pytest.raises(docker.errors.APIError) as err:
            net.remove()
        assert err.value.response.status_code == 403
        net.disconnect(box)
        net.reload()
        assert net.attrs["Containers"] == {}
        report = client.networks.prune(filters={"label": "sdk=yes"})
        assert report["NetworksDeleted"] == [name]
        with pytest.raises(docker.errors.NotFound):
            client.networks.get(name)
    finally:
        if box is not None:
            box.remove(force=True)
        try:
            client.networks.get(name).remove()
        except docker.errors.NotFound:
            pass
