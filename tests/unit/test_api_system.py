"""The HTTP face: /_ping, version prefixes, errors as {"message": ...}, durations."""

from __future__ import annotations

import pytest
from fakes import World, api_client, async_test

from dockyard.api.shapes import human_duration


async def world(tmp_path) -> World:
    w = World(tmp_path)
    await w.image("ubuntu")
    return w


@async_test
async def test_ping_get_and_head_carry_the_api_version_and_os(tmp_path):
    async with api_client(await world(tmp_path)) as client:
        r = await client.get("/_ping")
        assert r.status == 200 and await r.text() == "OK"
        assert r.headers["Api-Version"] == "1.50"
        assert r.headers["Ostype"] == "linux"
        assert r.headers["Docker-Experimental"] == "false"
        assert r.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        h = await client.head("/_ping")
        assert h.status == 200 and h.headers["Api-Version"] == "1.50"
        assert await h.read() == b""


@async_test
async def test_version_prefixes_oldest_newest_and_unversioned(tmp_path):
    async with api_client(await world(tmp_path)) as client:
        assert (await client.get("/v1.24/containers/json")).status == 200
        assert (await client.get("/v1.50/containers/json")).status == 200
        assert (await client.get("/containers/json")).status == 200
        old = await client.get("/v1.23/containers/json")
        assert old.status == 400
        assert (await old.json())["message"] == (
            "client version 1.23 is too old. Minimum supported API version is 1.24, "
            "please upgrade your client to a newer version"
        )
        new = await client.get("/v1.99/containers/json")
        assert new.status == 400
        assert (await new.json())["message"] == (
            "client version 1.99 is too new. Maximum supported API version is 1.50"
        )
        # The 2013 family stays reachable.
        assert (await client.get("/v1.4/containers/json")).status == 200


@async_test
async def test_errors_are_json_messages_with_the_right_status(tmp_path):
    w = await world(tmp_path)
    await w.create(name="taken")
    async with api_client(w) as client:
        r = await client.get("/containers/x/json")
        assert r.status == 404
        assert r.headers["Content-Type"] == "application/json"
        assert await r.json() == {"message": "No such container: x"}

        r = await client.post(
            "/containers/create?name=taken", json={"Image": "ubuntu", "Cmd": ["/bin/true"]}
        )
        assert r.status == 409
        assert "is already in use" in (await r.json())["message"]

        r = await client.post(
            "/containers/create",
            data=b'{"Image": "ubuntu",',
            headers={"Content-Type": "application/json"},
        )
        assert r.status == 400
        assert (await r.json())["message"].startswith("invalid JSON")

        r = await client.post("/containers/create", json={"Image": "ubuntu", "Cmd": 5})
        assert r.status == 400

        r = await client.get("/no/such/path")
        assert r.status == 404 and await r.json() == {"message": "page not found"}

        r = await client.post("/containers/taken/stop")
        assert r.status == 304

        r = await client.get("/containers/create")
        assert r.status == 405
        assert await r.json() == {"message": "GET is not allowed on /containers/create"}


@async_test
async def test_version_endpoint_reports_the_api_range(tmp_path):
    async with api_client(await world(tmp_path)) as client:
        r = await client.get("/version")
        body = await r.json()
        assert body["ApiVersion"] == "1.50" and body["MinAPIVersion"] == "1.24"
        assert body["Os"] == "linux"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "Less than a second"),
        (0.9, "Less than a second"),
        (1, "1 second"),
        (2, "2 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * 60, "59 minutes"),
        (60 * 60, "About an hour"),
        (89 * 60, "About an hour"),
        (91 * 60, "2 hours"),
        (2 * 3600, "2 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (13 * 24 * 3600, "13 days"),
        (14 * 24 * 3600, "2 weeks"),
        (8 * 7 * 24 * 3600, "8 weeks"),
        (60 * 24 * 3600, "2 months"),
        (364 * 24 * 3600, "12 months"),
        (2 * 365 * 24 * 3600, "2 years"),
    ],
)
def test_human_duration_matches_dockers_units(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(9000, "3 hours"), (16200, "5 hours")])
def test_human_duration_rounds_half_hours_up_like_go(seconds, text):
    assert human_duration(seconds) == text
