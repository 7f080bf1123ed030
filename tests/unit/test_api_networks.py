"""/networks over HTTP and the network service's rules, without root (recording plumbing)."""

from __future__ import annotations

import json
import re

from fakes import World, api_client, async_test

from dockyard.engine.models import ContainerConfig, EndpointSettings, HostConfig, NetworkingConfig
from dockyard.engine.network_models import Endpoint, Network
from dockyard.engine.networks import parse_until


class RecordingPlumbing:
    """Stands in for network_attach.Plumbing: records, hands out eth0, eth1..."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def network_created(self, n: Network) -> None:
        self.calls.append(("created", n.name))

    async def network_removed(self, n: Network) -> None:
        self.calls.append(("removed", n.name))

    async def attach(self, n: Network, e: Endpoint, netns: str) -> None:
        e.ip_address = "10.9.0.2"
        e.ip_prefix_len = 24
        e.interface = f"eth{e.seq}"
        e.endpoint_id = "e" * 64
        self.calls.append(("attach", n.name))

    async def detach(self, n: Network, e: Endpoint, netns: str) -> None:
        self.calls.append(("detach", n.name))

    async def container_networks_changed(self, container_id: str, netns: str) -> None:
        self.calls.append(("dns", "on" if netns else "off"))

    async def shutdown(self, live_restore: bool) -> None:
        self.calls.append(("shutdown", str(live_restore)))


async def world(tmp_path) -> World:
    w = World(tmp_path)
    await w.image("ubuntu")
    return w


async def create_net(client, name: str, **body) -> dict:
    r = await client.post("/networks/create", json={"Name": name, **body})
    assert r.status == 201, await r.text()
    return await r.json()


@async_test
async def test_predefined_networks_are_listed_and_cannot_be_removed(tmp_path):
    w = await world(tmp_path)
    async with api_client(w) as client:
        names = {n["Name"]: n for n in await (await client.get("/networks")).json()}
        assert set(names) == {"bridge", "host", "none"}
        assert names["none"]["Driver"] == "null" and names["host"]["Driver"] == "host"
        for name in ("bridge", "host", "none"):
            r = await client.delete(f"/networks/{name}")
            assert r.status == 403
            assert (await r.json())["message"] == (
                f"{name} is a pre-defined network and cannot be removed"
            )
        r = await client.post("/networks/create", json={"Name": "bridge"})
        assert r.status == 409
        assert (await r.json())["message"] == "network with name bridge already exists"


@async_test
async def test_create_inspect_list_remove(tmp_path):
    w = await world(tmp_path)
    async with api_client(w) as client:
        created = await create_net(
            client,
            "front",
            IPAM={"Config": [{"Subnet": "10.77.0.0/24", "IPRange": "10.77.0.128/25"}]},
            Labels={"tier": "web"},
            Internal=True,
        )
        assert re.fullmatch(r"[0-9a-f]{64}", created["Id"]) and created["Warning"] == ""
        n = await (await client.get("/networks/front")).json()
        assert n["Id"] == created["Id"] and n["Driver"] == "bridge" and n["Scope"] == "local"
        assert n["IPAM"]["Config"] == [
            {"Subnet": "10.77.0.0/24", "IPRange": "10.77.0.128/25", "Gateway": "10.77.0.1"}
        ]
        assert n["Internal"] is True and n["Labels"] == {"tier": "web"}
        assert n["Containers"] == {}
        # by id prefix too, and the scope filter of inspect
        assert (await client.get(f"/networks/{created['Id'][:5]}")).status == 200
        assert (await client.get("/networks/front?scope=swarm")).status == 404
        # an automatic subnet comes from dockerd's pools and avoids the other
        auto = await create_net(client, "back")
        back = await (await client.get(f"/networks/{auto['Id']}")).json()
        assert back["IPAM"]["Config"][0]["Subnet"].startswith(("172.", "192.168."))
        r = await client.get("/networks", params={"filters": json.dumps({"label": ["tier=web"]})})
        assert [x["Name"] for x in await r.json()] == ["front"]
        r = await client.get("/networks", params={"filters": json.dumps({"type": ["custom"]})})
        assert sorted(x["Name"] for x in await r.json()) == ["back", "front"]
        r = await client.get("/networks", params={"filters": json.dumps({"driver": ["null"]})})
        assert [x["Name"] for x in await r.json()] == ["none"]
        assert (await client.delete("/networks/front")).status == 204
        r = await client.get("/networks/front")
        assert r.status == 404 and (await r.json())["message"] == "network front not found"


@async_test
async def test_bad_create_requests_are_refused_with_dockerds_words(tmp_path):
    w = await world(tmp_path)
    async with api_client(w) as client:
        await create_net(client, "a", IPAM={"Config": [{"Subnet": "10.50.0.0/16"}]})
        cases = [
            ({"Name": "b", "Driver": "overlay"}, 404, 'plugin "overlay" not found'),
            (
                {"Name": "b", "Driver": "host"},
                403,
                'only one instance of "host" network is allowed',
            ),
            (
                {"Name": "b", "IPAM": {"Config": [{"Subnet": "10.50.3.0/24"}]}},
                403,
                "invalid pool request: Pool overlaps with other one on this address space",
            ),
            (
                {
                    "Name": "b",
                    "IPAM": {"Config": [{"Subnet": "10.60.0.0/24", "Gateway": "10.61.0.1"}]},
                },
                400,
                "no matching subnet for gateway 10.61.0.1",
            ),
            (
                {"Name": "b", "IPAM": {"Config": [{"Subnet": "10.60.0.0/99"}]}},
                400,
                "invalid subnet 10.60.0.0/99: invalid CIDR address: 10.60.0.0/99",
            ),
            ({"Name": "b", "EnableIPv6": True}, 400, None),
            ({"Name": "b", "Options": {"com.docker.network.driver.mtu": "9000"}}, 400, None),
            ({"Name": "a"}, 409, "network with name a already exists"),
            ({"Name": ""}, 400, None),
            ({"Name": "bad name"}, 400, None),
        ]
        for body, status, message in cases:
            r = await client.post("/networks/create", json=body)
            got = (await r.json())["message"]
            assert r.status == status, (body, got)
            if message:
                assert got == message
        assert sorted(n.name for n in w.containers.networks.all()) == [
            "a",
            "bridge",
            "host",
            "none",
        ]


@async_test
async def test_container_on_a_network_shows_it_and_blocks_its_removal(tmp_path):
    w = await world(tmp_path)
    w.containers.networks.plumbing = RecordingPlumbing()
    async with api_client(w) as client:
        net = await create_net(client, "app", IPAM={"Config": [{"Subnet": "10.88.0.0/24"}]})
        r = await client.post(
            "/containers/create?name=web",
            json={
                "Image": "ubuntu",
                "Cmd": ["/bin/true"],
                "HostConfig": {"NetworkMode": "app"},
                "NetworkingConfig": {
                    "EndpointsConfig": {
                        "app": {"Aliases": ["www"], "IPAMConfig": {"IPv4Address": "10.88.0.50"}}
                    }
                },
            },
        )
        assert r.status == 201, await r.text()
        cid = (await r.json())["Id"]
        info = await (await client.get(f"/containers/{cid}/json")).json()
        ep = info["NetworkSettings"]["Networks"]["app"]
        assert ep["NetworkID"] == net["Id"] and ep["Aliases"] == ["www"]
        assert ep["IPAMConfig"] == {"IPv4Address": "10.88.0.50"}
        assert ep["DNSNames"] == ["web", "www", cid[:12]]
        # before API 1.44 dockerd listed the short id among the aliases, without DNSNames
        old = await (await client.get(f"/v1.43/containers/{cid}/json")).json()
        old_ep = old["NetworkSettings"]["Networks"]["app"]
        assert old_ep["Aliases"] == ["www", cid[:12]] and "DNSNames" not in old_ep
        assert list(info["NetworkSettings"]["Networks"]) == ["app"]
        with open(info["ResolvConfPath"]) as f:
            resolv = f.read()
        assert "nameserver 127.0.0.11\n" in resolv and "ndots:0" in resolv
        assert (await client.post(f"/containers/{cid}/start")).status == 204
        r = await client.delete("/networks/app")
        assert r.status == 403
        assert (await r.json())["message"] == (
            f"error while removing network: network app id {net['Id']} has active endpoints"
        )
        # the same address cannot be asked for twice
        r = await client.post(
            "/containers/create",
            json={
                "Image": "ubuntu",
                "Cmd": ["/bin/true"],
                "HostConfig": {"NetworkMode": "app"},
                "NetworkingConfig": {
                    "EndpointsConfig": {"app": {"IPAMConfig": {"IPv4Address": "10.88.0.50"}}}
                },
            },
        )
        assert r.status == 403 and (await r.json())["message"] == "Address already in use"
        summary = (await (await client.get("/containers/json?all=1")).json())[0]
        assert list(summary["NetworkSettings"]["Networks"]) == ["app"]
        assert (await client.delete(f"/containers/{cid}?force=1")).status == 204
        assert w.containers.networks.endpoints_on(net["Id"]) == []
        assert (await client.delete("/networks/app")).status == 204


@async_test
async def test_a_stopped_container_does_not_hold_its_network(tmp_path):
    """As dockerd: only running containers have active endpoints; the network can go,
    and the container's next start says its network is not found."""
    w = await world(tmp_path)
    w.containers.networks.plumbing = RecordingPlumbing()
    async with api_client(w) as client:
        await create_net(client, "gone")
        r = await client.post(
            "/containers/create",
            json={"Image": "ubuntu", "Cmd": ["x"], "HostConfig": {"NetworkMode": "gone"}},
        )
        cid = (await r.json())["Id"]
        info = await (await client.get("/networks/gone")).json()
        assert info["Containers"] == {}
        assert (await client.delete("/networks/gone")).status == 204
        r = await client.post(f"/containers/{cid}/start")
        assert r.status == 404 and (await r.json())["message"] == "network gone not found"


@async_test
async def test_an_unknown_network_mode_fails_at_start_not_at_create(tmp_path):
    """As dockerd: create answers 201 (a 404 there makes the docker CLI pull the
    image); start says the network is not found, and the container stays Created;
    once the network exists, the next start joins it."""
    w = await world(tmp_path)
    w.containers.networks.plumbing = RecordingPlumbing()
    async with api_client(w) as client:
        for body in (
            {"HostConfig": {"NetworkMode": "nope"}},
            # The docker CLI also names its --network in EndpointsConfig.
            {
                "HostConfig": {"NetworkMode": "nope"},
                "NetworkingConfig": {"EndpointsConfig": {"nope": {}}},
            },
        ):
            r = await client.post(
                "/containers/create", json={"Image": "ubuntu", "Cmd": ["x"], **body}
            )
            assert r.status == 201, await r.text()
            cid = (await r.json())["Id"]
            r = await client.post(f"/containers/{cid}/start")
            assert r.status == 404 and (await r.json())["message"] == "network nope not found"
            info = await (await client.get(f"/containers/{cid}/json")).json()
            assert info["State"]["Status"] == "created"
        net = await create_net(client, "nope")
        assert w.containers.networks.endpoints_on(net["Id"]) == []
        w.containers.networks.check_network_mode(cid, "x", "nope")
        assert [e.container_id for e in w.containers.networks.endpoints_on(net["Id"])] == [cid]


@async_test
async def test_create_refuses_ip_without_subnet(tmp_path):
    w = await world(tmp_path)
    async with api_client(w) as client:
        await create_net(client, "auto")
        r = await client.post(
            "/containers/create",
            json={
                "Image": "ubuntu",
                "Cmd": ["x"],
                "HostConfig": {"NetworkMode": "auto"},
                "NetworkingConfig": {
                    "EndpointsConfig": {"auto": {"IPAMConfig": {"IPv4Address": "172.18.0.9"}}}
                },
            },
        )
        assert r.status == 403
        assert "user configured subnets" in (await r.json())["message"]
        r = await client.post(
            "/containers/create",
            json={
                "Image": "ubuntu",
                "Cmd": ["x"],
                "HostConfig": {"NetworkMode": "host"},
                "NetworkingConfig": {"EndpointsConfig": {"auto": {}}},
            },
        )
        assert r.status == 400
    assert w.containers.list(all_=True) == []


@async_test
async def test_connect_and_disconnect_a_running_container(tmp_path):
    w = await world(tmp_path)
    plumbing = RecordingPlumbing()
    w.containers.networks.plumbing = plumbing
    c = await w.run(cmd=["/bin/sleep", "60"])
    async with api_client(w) as client:
        net = await create_net(client, "side")
        r = await client.post(
            "/networks/side/connect", json={"Container": c.id, "EndpointConfig": {"Aliases": ["s"]}}
        )
        assert r.status == 200, await r.text()
        assert ("attach", "side") in plumbing.calls and ("dns", "on") in plumbing.calls
        info = await (await client.get("/networks/side")).json()
        assert info["Containers"][c.id]["IPv4Address"] == "10.9.0.2/24"
        assert info["Containers"][c.id]["Name"] == c.name.lstrip("/")
        r = await client.post("/networks/side/connect", json={"Container": c.id})
        assert r.status == 403
        assert (await r.json())["message"] == (
            f"endpoint with name {c.name.lstrip('/')} already exists in network side"
        )
        r = await client.post("/networks/side/disconnect", json={"Container": c.id})
        assert r.status == 200
        assert plumbing.calls[-2:] == [("detach", "side"), ("dns", "on")]
        assert w.containers.networks.endpoints_on(net["Id"]) == []
        r = await client.post("/networks/side/disconnect", json={"Container": c.id})
        assert r.status == 403
        r = await client.post("/networks/side/connect", json={"Container": "ghost"})
        assert r.status == 404
        r = await client.post("/networks/host/connect", json={"Container": c.id})
        assert r.status == 403


@async_test
async def test_stop_releases_addresses_and_restart_keeps_endpoints(tmp_path):
    w = await world(tmp_path)
    plumbing = RecordingPlumbing()
    w.containers.networks.plumbing = plumbing
    async with api_client(w) as client:
        await create_net(client, "keep", IPAM={"Config": [{"Subnet": "10.66.0.0/24"}]})
    c = await w.containers.create(
        ContainerConfig(image="ubuntu", cmd=["/bin/sleep", "60"]),
        HostConfig(network_mode="keep"),
        "kay",
        NetworkingConfig(endpoints_config={"keep": EndpointSettings(aliases=["kk"])}),
    )
    await w.containers.start(c.id)
    ((n, e),) = w.containers.networks.endpoints_of(c.id)
    assert e.ip_address and e.interface == "eth0"
    assert w.containers.networks.resolve(c.id, "kk") == [e.ip_address]
    assert w.containers.networks.resolve(c.id, c.id[:12]) == [e.ip_address]
    assert w.containers.networks.resolve(c.id, "kay.keep") == [e.ip_address]
    assert w.containers.networks.resolve(c.id, "nobody") is None
    await w.containers.stop(c.id, timeout=1)
    ((n, e),) = w.containers.networks.endpoints_of(c.id)
    assert e.ip_address == "" and ("detach", "keep") in plumbing.calls
    w2 = await w.restarted()
    ((n2, e2),) = w2.containers.networks.endpoints_of(c.id)
    assert n2.name == "keep" and e2.aliases == ["kk"]


@async_test
async def test_prune_removes_unused_custom_networks_only(tmp_path):
    w = await world(tmp_path)
    async with api_client(w) as client:
        await create_net(client, "unused", Labels={"keep": "no"})
        await create_net(client, "kept", Labels={"keep": "yes"})
        await create_net(client, "used")
        w.containers.networks.plumbing = RecordingPlumbing()
        r = await client.post(
            "/containers/create",
            json={"Image": "ubuntu", "Cmd": ["/bin/sleep"], "HostConfig": {"NetworkMode": "used"}},
        )
        assert r.status == 201
        assert (await client.post(f"/containers/{(await r.json())['Id']}/start")).status == 204
        r = await client.post(
            "/networks/prune", params={"filters": json.dumps({"label!": ["keep=yes"]})}
        )
        assert (await r.json()) == {"NetworksDeleted": ["unused"]}
        r = await client.post("/networks/prune", params={"filters": json.dumps({"until": ["1h"]})})
        assert (await r.json()) == {"NetworksDeleted": []}
        r = await client.post("/networks/prune")
        assert (await r.json()) == {"NetworksDeleted": ["kept"]}
        names = sorted(n["Name"] for n in await (await client.get("/networks")).json())
        assert names == ["bridge", "host", "none", "used"]
        r = await client.post("/networks/prune", params={"filters": json.dumps({"bogus": ["1"]})})
        assert r.status == 400


def test_until_accepts_seconds_durations_and_dates():
    assert parse_until("1700000000") == 1700000000.0
    assert parse_until("1h30m", now=10000.0) == 10000.0 - 5400
    assert parse_until("2024-01-02T03:04:05Z") > 1.7e9


@async_test
async def test_ps_filters_by_network_name_or_id_prefix(tmp_path):
    w = await world(tmp_path)
    async with api_client(w) as client:
        net = await create_net(client, "blue")
        r = await client.post(
            "/containers/create?name=onblue",
            json={"Image": "ubuntu", "Cmd": ["x"], "HostConfig": {"NetworkMode": "blue"}},
        )
        on_blue = (await r.json())["Id"]
        r = await client.post(
            "/containers/create?name=onbridge", json={"Image": "ubuntu", "Cmd": ["x"]}
        )
        on_bridge = (await r.json())["Id"]

        async def ids(value: str) -> list[str]:
            q = {"all": "1", "filters": json.dumps({"network": [value]})}
            return [c["Id"] for c in await (await client.get("/containers/json", params=q)).json()]

        assert await ids("blue") == [on_blue]
        assert await ids(net["Id"][:8]) == [on_blue]
        assert await ids("bridge") == [on_bridge]
        assert await ids("nothing") == []


@async_test
async def test_the_docker_clis_default_endpoint_is_the_bridge(tmp_path):
    """`docker run` sends EndpointsConfig {"default": {...}} with NetworkMode "default"."""
    w = await world(tmp_path)
    async with api_client(w) as client:
        r = await client.post(
            "/containers/create",
            json={
                "Image": "ubuntu",
                "Cmd": ["x"],
                "HostConfig": {"NetworkMode": "default"},
                "NetworkingConfig": {"EndpointsConfig": {"default": {"Aliases": None}}},
            },
        )
        assert r.status == 201, await r.text()
