"""/containers over HTTP: the 2013 shapes of /v1.4 and the modern ones."""

from __future__ import annotations

import re
import time

from fakes import SEED_CREATE, World, api_client, async_test, exit_with

SEED_HEADERS = {"User-Agent": "Docker-Client/0.5.3", "Content-Type": "application/json"}


async def world(tmp_path) -> World:
    w = World(tmp_path)
    await w.image("ubuntu")
    return w


def test_seed_body_is_the_seeds_335_bytes():
    assert len(SEED_CREATE) == 335


@async_test
async def test_v14_create_answers_exactly_as_in_2013(tmp_path):
    w = await world(tmp_path)
    async with api_client(w) as client:
        r = await client.post("/v1.4/containers/create", data=SEED_CREATE, headers=SEED_HEADERS)
        body = await r.read()
        assert r.status == 201
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert re.fullmatch(rb'\{"Id":"[0-9a-f]{12}"\}', body), body
        assert len(body) == 21 and r.headers["Content-Length"] == "21"
        assert "Api-Version" not in r.headers and "Server" not in r.headers
    short = body[7:19].decode()
    c = w.containers.get(short)
    assert (c.path, c.args) == ("/bin/echo", ["hello", "world"])
    assert c.config.hostname == short


@async_test
async def test_v14_list_has_exactly_the_2013_fields(tmp_path):
    w = await world(tmp_path)
    w.launcher.programs["/bin/echo"] = exit_with(0, b"hello world\n")
    done = await w.run(cmd=["/bin/echo", "hello", "world"])
    await w.containers.wait(done.id)
    up = await w.run(cmd=["/bin/sleep", "5"])
    async with api_client(w) as client:
        r = await client.get("/v1.4/containers/json?all=1")
        items = await r.json()
    assert [i["Id"] for i in items] == [up.id, done.id]
    for item in items:
        assert set(item) == {
            "Id", "Image", "Command", "Created", "Status", "Ports", "SizeRw", "SizeRootFs",
        }  # fmt: skip
        assert item["Image"] == "ubuntu:latest"
        assert isinstance(item["Created"], int) and abs(item["Created"] - time.time()) < 60
        assert item["Ports"] == ""
    assert items[1]["Command"] == "/bin/echo hello world"
    assert items[1]["Status"] == "Exit 0"
    assert items[0]["Status"].startswith("Up ")


@async_test
async def test_modern_list_fields(tmp_path):
    w = await world(tmp_path)
    w.launcher.programs["/bin/false"] = exit_with(3)
    c = await w.run(cmd=["/bin/false", "x"], name="ex", labels={"a": "b"})
    await w.containers.wait(c.id)
    async with api_client(w) as client:
        assert await (await client.get("/containers/json")).json() == []
        items = await (await client.get("/containers/json?all=1")).json()
    (item,) = items
    assert item["Id"] == c.id
    assert item["Names"] == ["/ex"]
    assert item["Image"] == "ubuntu"
    assert item["ImageID"] == c.image and item["ImageID"].startswith("sha256:")
    assert item["Command"] == "/bin/false x"
    # dockerd quotes an argument with a space (and joins an empty one as it is)
    q = await w.create(cmd=["sh", "-c", 'echo "a b"', "x", ""], name="quoted")
    async with api_client(w) as client:
        items = await (await client.get("/containers/json?all=1")).json()
        legacy = await (await client.get("/v1.4/containers/json?all=1")).json()
    assert {i["Id"]: i["Command"] for i in items}[q.id] == "sh -c 'echo \"a b\"' x "
    assert {i["Id"]: i["Command"] for i in legacy}[q.id] == 'sh -c echo "a b" x '
    assert isinstance(item["Created"], int)
    assert item["State"] == "exited"
    assert re.fullmatch(r"Exited \(3\) (Less than a second|\d+ seconds) ago", item["Status"])
    assert item["Labels"] == {"a": "b"}
    assert item["Ports"] == [] and item["Mounts"] == []
    assert item["HostConfig"] == {"NetworkMode": "bridge"}


@async_test
async def test_list_filters_over_http(tmp_path):
    w = await world(tmp_path)
    await w.create(name="aa", labels={"k": "1"})
    await w.create(name="bb")
    async with api_client(w) as client:
        r = await client.get(
            "/containers/json", params={"all": "1", "filters": '{"label":["k=1"]}'}
        )
        assert [i["Names"] for i in await r.json()] == [["/aa"]]
        r = await client.get("/containers/json", params={"all": "1", "filters": '{"bogus":["x"]}'})
        assert r.status == 400 and (await r.json())["message"] == "invalid filter 'bogus'"
        r = await client.get("/containers/json", params={"filters": "{not json"})
        assert r.status == 400


@async_test
async def test_invalid_filter_is_refused_even_when_nothing_is_listed(tmp_path):
    w = await world(tmp_path)
    async with api_client(w) as client:
        r = await client.get("/containers/json", params={"filters": '{"bogus":["x"]}'})
        assert r.status == 400 and (await r.json())["message"] == "invalid filter 'bogus'"


@async_test
async def test_create_modern_answers_full_id_and_warnings(tmp_path):
    w = await world(tmp_path)
    async with api_client(w) as client:
        r = await client.post(
            "/v1.43/containers/create?name=web",
            json={"Image": "ubuntu", "Cmd": ["/bin/true"], "HostConfig": {"Memory": 1024}},
        )
        assert r.status == 400
        assert (await r.json())["message"] == "Minimum memory limit allowed is 6MB"
        r = await client.post(
            "/v1.43/containers/create?name=web", json={"Image": "ubuntu", "Cmd": ["/bin/true"]}
        )
        body = await r.json()
        assert r.status == 201 and body["Warnings"] == []
        assert re.fullmatch("[0-9a-f]{64}", body["Id"])
        r = await client.post("/containers/create", json={"Image": "nosuch", "Cmd": ["x"]})
        assert r.status == 404
        assert await r.json() == {"message": "No such image: nosuch:latest"}


@async_test
async def test_inspect_modern_and_2013_shapes(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep", "9"], name="web", env=["A=1"])
    async with api_client(w) as client:
        doc = await (await client.get("/containers/web/json")).json()
        old = await (await client.get(f"/v1.4/containers/{c.short_id}/json")).json()
    assert doc["Id"] == c.id and doc["Name"] == "/web"
    assert doc["Path"] == "/bin/sleep" and doc["Args"] == ["9"]
    assert doc["State"]["Status"] == "running" and doc["State"]["Running"] is True
    assert doc["State"]["Pid"] == w.launcher.last(c.id).pid
    assert doc["Config"]["Env"] == ["A=1"] and doc["Config"]["Hostname"] == c.short_id
    assert doc["Config"]["Image"] == "ubuntu"
    assert doc["HostConfig"]["NetworkMode"] == "bridge"
    assert doc["Image"] == c.image and doc["RestartCount"] == 0
    assert doc["GraphDriver"]["Data"]["UpperDir"].endswith(f"{c.id}/upper")
    assert doc["LogPath"].endswith(f"{c.id}-json.log")
    # 2013: no Name, image id without sha256:, State with Ghost.
    assert "Name" not in old and old["Image"] == c.image[7:]
    assert old["State"] == {
        "Running": True,
        "Pid": w.launcher.last(c.id).pid,
        "ExitCode": 0,
        "StartedAt": c.state.started_at,
        "Ghost": False,
    }
    assert old["Config"]["Cmd"] == ["/bin/sleep", "9"]


@async_test
async def test_start_stop_wait_and_delete_over_http(tmp_path):
    w = await world(tmp_path)
    c = await w.create(cmd=["/bin/sleep"], name="web")
    async with api_client(w) as client:
        r = await client.post("/containers/web/start")
        assert r.status == 204
        assert (await client.post("/containers/web/start")).status == 304
        r = await client.delete("/containers/web")
        assert r.status == 409
        assert "container is running" in (await r.json())["message"]
        wait = client.post("/containers/web/wait")
        assert (await client.post("/containers/web/stop?t=1")).status == 204
        r = await wait
        assert r.status == 200
        assert await r.json() == {"StatusCode": 143, "Error": None}
        r = await client.post("/v1.4/containers/web/wait")
        assert await r.json() == {"StatusCode": 143}
        assert (await client.delete("/containers/web")).status == 204
        r = await client.delete("/containers/web")
        assert r.status == 404 and await r.json() == {"message": "No such container: web"}
    assert c.id not in {x.id for x in w.store.containers()}


@async_test
async def test_wait_reports_the_start_error(tmp_path):
    w = await world(tmp_path)
    w.launcher.missing.add("/nope")
    await w.create(cmd=["/nope"], name="bad")
    async with api_client(w) as client:
        r = await client.post("/containers/bad/start")
        assert r.status == 400
        assert "executable file not found" in (await r.json())["message"]
        r = await client.post("/containers/bad/wait")
        body = await r.json()
    assert body["StatusCode"] == 127
    assert "executable file not found" in body["Error"]["Message"]


@async_test
async def test_logs_over_http_multiplexed_with_tail(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"], name="web")
    link = w.launcher.last(c.id)
    link.emit(1, b"one\n")
    link.emit(2, b"two\n")
    link.emit(1, b"three\n")
    async with api_client(w) as client:
        r = await client.get("/containers/web/logs?stdout=1&stderr=1&tail=2")
        assert r.headers["Content-Type"] == "application/vnd.docker.multiplexed-stream"
        assert await r.read() == b"\x02\0\0\0\0\0\0\x04two\n\x01\0\0\0\0\0\0\x06three\n"
        r = await client.get("/v1.41/containers/web/logs?stdout=1")
        assert r.headers["Content-Type"] == "application/vnd.docker.raw-stream"
        r = await client.get("/containers/web/logs")
        assert r.status == 400
        assert (await r.json())["message"] == "Bad parameters: you must choose at least one stream"


@async_test
async def test_list_shows_the_image_id_once_the_name_points_elsewhere(tmp_path):
    w = await world(tmp_path)
    c = await w.create(name="old")
    await w.image("ubuntu", changes=["ENV NEWER=1"])  # `docker pull ubuntu` got a newer one
    async with api_client(w) as client:
        (item,) = await (await client.get("/containers/json?all=1")).json()
    assert item["Image"] == c.image


@async_test
async def test_v14_start_without_a_body_needs_no_json_content_type(tmp_path):
    """As dockerd's start: an empty body is not checked; a body must be JSON."""
    w = await world(tmp_path)
    await w.create(cmd=["/bin/sleep"], name="plain")
    async with api_client(w) as client:
        r = await client.post(
            "/v1.4/containers/plain/start",
            data=b'{"Binds":["/tmp:/x"]}',
            headers={"Content-Type": "text/plain"},
        )
        assert r.status == 400
        assert "must be 'application/json'" in (await r.json())["message"]
        r = await client.post(
            "/v1.4/containers/plain/start", headers={"Content-Type": "plain/text"}
        )
        assert r.status == 204
