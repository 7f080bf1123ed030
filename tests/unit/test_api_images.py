"""/images over HTTP: list shapes, tag, delete."""

from __future__ import annotations

from fakes import World, api_client, async_test


@async_test
async def test_images_json_modern_shape(tmp_path):
    w = World(tmp_path)
    image_id = await w.image("ubuntu", changes=["LABEL team=infra"])
    async with api_client(w) as client:
        items = await (await client.get("/images/json")).json()
        old_api = await (await client.get("/v1.43/images/json")).json()
    (item,) = items
    assert set(item) == {
        "Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "SharedSize",
        "Labels", "Containers",
    }  # fmt: skip
    assert item["Id"] == image_id and item["RepoTags"] == ["ubuntu:latest"]
    assert item["Labels"] == {"team": "infra"}
    assert isinstance(item["Created"], int) and item["Created"] > 1_700_000_000
    assert item["Size"] > 0
    # Before 1.44 dockerd also sent VirtualSize.
    assert old_api[0]["VirtualSize"] == item["Size"]


@async_test
async def test_images_json_2013_shape_one_row_per_tag(tmp_path):
    w = World(tmp_path)
    image_id = await w.image("ubuntu")
    w.images.tag("ubuntu", "ubuntu", "12.04")
    async with api_client(w) as client:
        items = await (await client.get("/v1.4/images/json")).json()
    assert sorted((i["Repository"], i["Tag"]) for i in items) == [
        ("ubuntu", "12.04"),
        ("ubuntu", "latest"),
    ]
    for i in items:
        assert set(i) == {"Repository", "Tag", "Id", "Created", "Size", "VirtualSize"}
        assert i["Id"] == image_id[7:19]


@async_test
async def test_tag_then_delete_over_http(tmp_path):
    w = World(tmp_path)
    image_id = await w.image("ubuntu")
    async with api_client(w) as client:
        r = await client.post("/images/ubuntu/tag?repo=me/app&tag=v1")
        assert r.status == 201
        r = await client.delete("/images/me/app:v1")
        assert r.status == 200
        assert await r.json() == [{"Untagged": "me/app:v1"}]
        await w.create(name="user")
        r = await client.delete("/images/ubuntu")
        assert r.status == 409
        assert (await r.json())["message"].startswith(
            'conflict: unable to remove repository reference "ubuntu" (must force)'
        )
        await w.containers.remove("user")
        r = await client.delete("/images/ubuntu")
        assert await r.json() == [{"Untagged": "ubuntu:latest"}, {"Deleted": image_id}]
        r = await client.delete("/images/ubuntu")
        assert r.status == 404
        assert await r.json() == {"message": "No such image: ubuntu:latest"}


@async_test
async def test_image_inspect_over_http(tmp_path):
    w = World(tmp_path)
    image_id = await w.image("ubuntu", changes=['CMD ["/bin/sh"]'])
    async with api_client(w) as client:
        doc = await (await client.get("/images/ubuntu/json")).json()
        r = await client.get("/images/nosuch/json")
        assert r.status == 404
    assert doc["Id"] == image_id and doc["RepoTags"] == ["ubuntu:latest"]
    assert doc["Config"]["Cmd"] == ["/bin/sh"] and doc["Config"]["Entrypoint"] is None
    assert doc["Os"] == "linux"
    assert doc["RootFS"]["Type"] == "layers" and len(doc["RootFS"]["Layers"]) == 1


@async_test
async def test_image_inspect_fields_dockerd_dropped_by_version(tmp_path):
    """dockerd omits VirtualSize from 1.44 and Container/ContainerConfig from 1.45 on;
    docker-compose 1.29 reads ContainerConfig to recreate a container (KeyError without)."""
    w = World(tmp_path)
    await w.image("ubuntu", changes=['CMD ["/bin/sh"]'])
    docs = {}
    async with api_client(w) as client:
        for v in ("1.43", "1.44", "1.45", "1.50"):
            docs[v] = await (await client.get(f"/v{v}/images/ubuntu/json")).json()
    assert "VirtualSize" in docs["1.43"] and "VirtualSize" not in docs["1.44"]
    assert docs["1.44"]["ContainerConfig"]["Cmd"] == ["/bin/sh"] and "Container" in docs["1.44"]
    for v in ("1.45", "1.50"):
        assert "ContainerConfig" not in docs[v] and "Container" not in docs[v]


@async_test
async def test_import_from_request_body(tmp_path):
    from fakes import rootfs_tar

    w = World(tmp_path)
    async with api_client(w) as client:
        r = await client.post("/images/create?fromSrc=-&repo=imported&tag=v2", data=rootfs_tar())
        assert r.status == 200
        lines = (await r.read()).splitlines()
    import json

    image_id = json.loads(lines[-1])["status"]
    assert w.images.resolve("imported:v2") == image_id


@async_test
async def test_last_tag_time_is_when_the_image_was_last_named(tmp_path):
    """`compose images` shows it as CREATED ("292 years ago" for Go's zero time)."""
    import time

    from dockyard.engine.clock import parse_rfc3339

    w = World(tmp_path)
    before = time.time()
    await w.image("ubuntu")
    async with api_client(w) as client:
        imported = (await (await client.get("/images/ubuntu/json")).json())["Metadata"]
        assert before <= parse_rfc3339(imported["LastTagTime"]) <= time.time()
        time.sleep(0.01)
        w.images.tag("ubuntu", "mirror/ubuntu", "1")
        # a restarted daemon still knows it
        w2 = await w.restarted()
        async with api_client(w2) as client2:
            tagged = (await (await client2.get("/images/mirror/ubuntu:1/json")).json())["Metadata"]
    assert parse_rfc3339(tagged["LastTagTime"]) > parse_rfc3339(imported["LastTagTime"])
