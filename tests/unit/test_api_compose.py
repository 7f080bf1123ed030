"""Docker Compose v2's requests, byte for byte as it sends them, answered as dockerd does.

tests/unit/data/compose_v2_create_web.json is the body compose 2.40 sent to create
the example application's `web` container (examples/webapp), with its host paths
replaced. Compose finds what it made again through label filters; what it cannot
find, it makes again, so a second `up` would recreate everything.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from fakes import World, api_client, async_test, exit_with

DATA = Path(__file__).parent / "data"
PROJECT = "com.docker.compose.project=webapp"


def compose_body(tmp_path: Path) -> dict:
    body = json.loads((DATA / "compose_v2_create_web.json").read_text())
    web = tmp_path / "web"
    web.mkdir()
    body["HostConfig"]["Binds"] = [f"{web}:/www:ro"]
    return body


def label_filter(*labels: str) -> dict[str, str]:
    return {"filters": json.dumps({"label": {label: True for label in labels}})}


@async_test
async def test_compose_create_body_is_accepted_and_found_again_by_its_labels(tmp_path):
    w = World(tmp_path)
    await w.image("busybox")
    body = compose_body(tmp_path)
    async with api_client(w) as client:
        r = await client.post(
            "/v1.50/networks/create",
            json={
                "Driver": "", "Scope": "", "IPAM": None, "Internal": False,
                "Attachable": False, "Ingress": False, "ConfigOnly": False,
                "ConfigFrom": None, "Options": None, "Name": "webapp_default",
                "Labels": {"com.docker.compose.network": "default",
                           "com.docker.compose.project": "webapp"},
            },
        )  # fmt: skip
        assert r.status == 201, await r.text()
        # "LogConfig": {"Type": "", "Config": null}: Go's nil map, not an error.
        assert body["HostConfig"]["LogConfig"] == {"Type": "", "Config": None}
        r = await client.post("/v1.50/containers/create?name=webapp-web-1", json=body)
        assert r.status == 201, await r.text()
        cid = (await r.json())["Id"]

        info = await (await client.get(f"/v1.50/containers/{cid}/json")).json()
        assert info["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
        assert info["HostConfig"]["RestartPolicy"] == body["HostConfig"]["RestartPolicy"]
        assert info["Config"]["Labels"] == body["Labels"]
        net = info["NetworkSettings"]["Networks"]["webapp_default"]
        assert net["Aliases"] == ["webapp-web-1", "web"]

        # Not started: dockerd lists no port (NetworkSettings.Ports is filled at start and
        # cleared at stop; `compose ps -a` showed "80/tcp" for a stopped front).
        r = await client.get("/v1.50/containers/json", params={"all": "1"})
        assert [c["Ports"] for c in await r.json()] == [[]]

        # What `up` lists to decide what to keep, and what `down` lists to remove.
        for labels in (
            ("com.docker.compose.config-hash", PROJECT),
            ("com.docker.compose.oneoff=False", PROJECT, "com.docker.compose.service=web"),
        ):
            r = await client.get(
                "/v1.50/containers/json", params={"all": "1", **label_filter(*labels)}
            )
            assert [c["Id"] for c in await r.json()] == [cid], labels
        for labels in (
            ("com.docker.compose.project=other",),
            ("com.docker.compose.service=api", PROJECT),
        ):
            r = await client.get(
                "/v1.50/containers/json", params={"all": "1", **label_filter(*labels)}
            )
            assert await r.json() == [], labels
        r = await client.get("/v1.50/networks", params=label_filter(PROJECT))
        assert [n["Name"] for n in await r.json()] == ["webapp_default"]


async def events_since(client, since: float) -> list[dict]:
    r = await client.get(
        "/v1.50/events",
        params={
            "since": f"{since:.9f}",
            "until": f"{time.time() + 1:.9f}",
            "filters": json.dumps({"type": ["network", "volume"]}),
        },
    )
    return [json.loads(line) for line in (await r.text()).splitlines() if line]


@async_test
async def test_network_and_volume_events_are_dockerds(tmp_path):
    """create/destroy of what compose makes, connect/disconnect with the network's id, a
    volume's mount and unmount around a run, in dockerd's order."""
    from test_api_networks import RecordingPlumbing

    w = World(tmp_path)
    await w.image("busybox")
    w.launcher.programs["/bin/sleep"] = exit_with(0)
    w.containers.networks.plumbing = RecordingPlumbing()
    since = time.time()
    async with api_client(w) as client:
        r = await client.post("/v1.50/networks/create", json={"Name": "webapp_default"})
        nid = (await r.json())["Id"]
        r = await client.post("/v1.50/volumes/create", json={"Name": "webapp_data"})
        assert r.status == 201
        r = await client.post(
            "/v1.50/containers/create?name=box",
            json={
                "Image": "busybox",
                "Cmd": ["/bin/sleep"],
                "HostConfig": {"NetworkMode": "webapp_default", "Binds": ["webapp_data:/data"]},
            },
        )
        assert r.status == 201, await r.text()
        cid = (await r.json())["Id"]
        assert (await client.post(f"/v1.50/containers/{cid}/start")).status == 204
        await w.containers.wait(cid)
        assert (await client.delete(f"/v1.50/containers/{cid}")).status == 204
        assert (await client.delete("/v1.50/volumes/webapp_data")).status == 204
        assert (await client.delete("/v1.50/networks/webapp_default")).status == 204
        seen = [
            (e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"])
            for e in await events_since(client, since)
        ]
    on_net = {"container": cid, "name": "webapp_default", "type": "bridge"}
    assert seen == [
        ("network", "create", nid, {"name": "webapp_default", "type": "bridge"}),
        ("volume", "create", "webapp_data", {"driver": "local"}),
        ("network", "connect", nid, on_net),  # dockerd: networking, then the mounts
        (
            "volume",
            "mount",
            "webapp_data",
            {
                "container": cid,
                "destination": "/data",
                "driver": "local",
                "propagation": "",
                "read/write": "true",
            },
        ),
        ("network", "disconnect", nid, on_net),  # dockerd: the network, then the volumes
        ("volume", "unmount", "webapp_data", {"container": cid, "driver": "local"}),
        ("volume", "destroy", "webapp_data", {"driver": "local"}),
        ("network", "destroy", nid, {"name": "webapp_default", "type": "bridge"}),
    ]
