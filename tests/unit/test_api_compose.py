"""Docker Compose v2's requests, byte for byte as it sends them, answered as dockerd does.

tests/unit/data/compose_v2_create_web.json is the body compose 2.40 sent to create
the example application's `web` container (examples/webapp), with its host paths
replaced. Compose finds what it made again through label filters; what it cannot
find, it makes again, so a second `up` would recreate everything.
"""

from __future__ import annotations

import json
from pathlib import Path

from fakes import World, api_client, async_test

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
