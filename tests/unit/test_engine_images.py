"""The image service: names, tags and dockerd's rules for `docker rmi`."""

from __future__ import annotations

import pytest
from fakes import World, async_test

from dockyard.errors import Conflict, InvalidParameter, NotFound


async def world(tmp_path) -> tuple[World, str]:
    w = World(tmp_path)
    image_id = await w.image("ubuntu")
    return w, image_id


@async_test
async def test_import_tags_and_resolves_by_name_id_and_prefix(tmp_path):
    w, image_id = await world(tmp_path)
    assert image_id.startswith("sha256:") and len(image_id) == 71
    hexid = image_id[7:]
    for name in ("ubuntu", "ubuntu:latest", "docker.io/library/ubuntu", image_id, hexid, hexid[:4]):
        assert w.images.resolve(name) == image_id, name
    assert w.images.tags_of(image_id) == ["ubuntu:latest"]
    with pytest.raises(NotFound) as e:
        w.images.resolve("debian")
    assert e.value.message == "No such image: debian:latest"


@async_test
async def test_tag_adds_a_name_and_moves_an_existing_one(tmp_path):
    w, image_id = await world(tmp_path)
    other = await w.image("other", changes=["ENV A=1"])
    assert w.images.tag(image_id[7:19], "me/app", "v1") == "me/app:v1"
    assert w.images.tags_of(image_id) == ["me/app:v1", "ubuntu:latest"]
    w.images.tag("other", "ubuntu")
    assert w.images.resolve("ubuntu") == other
    assert w.images.tags_of(image_id) == ["me/app:v1"]
    with pytest.raises(InvalidParameter):
        w.images.tag("ubuntu", "Bad Name")


@async_test
async def test_rmi_of_one_of_several_names_only_untags(tmp_path):
    w, image_id = await world(tmp_path)
    w.images.tag("ubuntu", "ubuntu", "22.04")
    assert w.images.delete("ubuntu:22.04") == [{"Untagged": "ubuntu:22.04"}]
    assert w.images.resolve("ubuntu") == image_id


@async_test
async def test_rmi_of_the_last_name_deletes_the_image(tmp_path):
    w, image_id = await world(tmp_path)
    assert w.images.delete("ubuntu") == [{"Untagged": "ubuntu:latest"}, {"Deleted": image_id}]
    assert w.images.list() == []
    with pytest.raises(NotFound):
        w.images.resolve(image_id)
    assert not w.images.blobs.has_blob(image_id)
    # ... and it stays deleted across a daemon restart.
    w2 = await w.restarted()
    assert w2.images.list() == []


@async_test
async def test_rmi_by_id_of_an_image_with_several_names_must_be_forced(tmp_path):
    w, image_id = await world(tmp_path)
    w.images.tag("ubuntu", "mine")
    short = image_id[7:19]
    with pytest.raises(Conflict) as e:
        w.images.delete(short)
    assert e.value.message == (
        f"conflict: unable to delete {short} (must be forced) - image is referenced in "
        "multiple repositories"
    )
    assert w.images.delete(short, force=True) == [
        {"Untagged": "mine:latest"},
        {"Untagged": "ubuntu:latest"},
        {"Deleted": image_id},
    ]


@async_test
async def test_rmi_refuses_an_image_a_stopped_container_uses_unless_forced(tmp_path):
    w, image_id = await world(tmp_path)
    c = await w.create()
    short = image_id[7:19]
    with pytest.raises(Conflict) as e:
        w.images.delete("ubuntu")
    assert e.value.message == (
        f'conflict: unable to remove repository reference "ubuntu" (must force) - container '
        f"{c.id[:12]} is using its referenced image {short}"
    )
    with pytest.raises(Conflict) as e:
        w.images.delete(short)
    assert e.value.message == (
        f"conflict: unable to delete {short} (must be forced) - image is being used by "
        f"stopped container {c.id[:12]}"
    )
    # Forced: the name goes, the image stays for its container.
    assert w.images.delete("ubuntu", force=True) == [{"Untagged": "ubuntu:latest"}]
    assert w.images.resolve(image_id) == image_id


@async_test
async def test_rmi_of_an_image_a_running_container_uses_cannot_be_forced(tmp_path):
    w, image_id = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"])
    short = image_id[7:19]
    with pytest.raises(Conflict) as e:
        w.images.delete(image_id, force=True)
    assert e.value.message == (
        f"conflict: unable to delete {short} (cannot be forced) - image is being used by "
        f"running container {c.id[:12]}"
    )
    await w.containers.remove(c.id, force=True)
    assert w.images.delete(image_id)[-1] == {"Deleted": image_id}


@async_test
async def test_image_config_reaches_inspect(tmp_path):
    w = World(tmp_path)
    await w.image("web", changes=["ENV A=1", 'CMD ["/bin/sh"]', "LABEL k=v"])
    info = w.images.inspect("web")
    assert info.record.repo_tags == ["web:latest"]
    cfg = info.config["config"]
    assert cfg["Env"] == ["A=1"] and cfg["Cmd"] == ["/bin/sh"] and cfg["Labels"] == {"k": "v"}


@async_test
async def test_list_by_reference_shows_only_the_matching_names(tmp_path):
    # `docker images ubuntu` lists ubuntu's tags, not the image's other names.
    w, image_id = await world(tmp_path)
    other = await w.image("other", changes=["LABEL tier=db"])
    w.images.tag("ubuntu", "me/app", "v1")
    (listed,) = w.images.list({"reference": ["ubuntu"]})
    assert (listed.id, listed.repo_tags) == (image_id, ["ubuntu:latest"])
    assert [r.repo_tags for r in w.images.list({"reference": ["me/*"]})] == [["me/app:v1"]]
    assert [r.id for r in w.images.list({"label": ["tier=db"]})] == [other]
    assert [r.id for r in w.images.list({"before": ["other"]})] == [image_id]
    assert [r.id for r in w.images.list({"since": ["ubuntu"]})] == [other]
    assert w.images.list({"dangling": ["true"]}) == []
    assert w.images.list({"dangling": []}) == []  # a key without values: dangling only
    with pytest.raises(InvalidParameter, match="invalid filter 'colour'"):
        w.images.list({"colour": ["red"]})


@async_test
async def test_save_plan_follows_dockerds_name_rules(tmp_path):
    w, image_id = await world(tmp_path)
    w.images.tag("ubuntu", "ubuntu", "22.04")
    other = await w.images.import_rootfs(
        lambda f: _write_rootfs(f), repo="me/app", tag="v1", changes=["ENV A=1"]
    )
    # A bare repository name: every tag of it.
    (plan,) = w.images.save_plan(["ubuntu"])
    assert plan.image_id == image_id and sorted(plan.repo_tags) == ["ubuntu:22.04", "ubuntu:latest"]
    # name:tag: that tag only; an id: no tags; several names: one entry per image.
    (plan,) = w.images.save_plan(["ubuntu:22.04"])
    assert plan.repo_tags == ["ubuntu:22.04"]
    (plan,) = w.images.save_plan([image_id[7:19]])
    assert plan.repo_tags == []
    plans = w.images.save_plan(["ubuntu:latest", "me/app:v1", image_id])
    assert [(p.image_id, p.repo_tags) for p in plans] == [
        (image_id, ["ubuntu:latest"]),
        (other, ["me/app:v1"]),
    ]
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        w.images.save_plan(["nope"])
    with pytest.raises(InvalidParameter):
        w.images.save_plan([])


async def _write_rootfs(f) -> None:
    from fakes import _ROOTFS

    f.write(_ROOTFS)


@async_test
async def test_prune_takes_untagged_images_and_spares_tagged_used_and_intermediate(tmp_path):
    w, image_id = await world(tmp_path)
    dangling = await w.images.import_rootfs(_body, changes=["ENV D=1"])
    parent = await w.images.import_rootfs(_body, changes=["ENV P=1"])
    child = await w.image("child", changes=["ENV C=1"])
    w.images._images[child].parent = parent  # what a build or commit records
    deleted, _ = w.images.prune({})
    assert deleted == [{"Deleted": dangling}]  # the parent of child:latest is no orphan
    assert w.images.has_image(parent) and w.images.has_image(image_id)
    used = await w.images.import_rootfs(_body, repo="used", changes=["ENV U=1"])
    await w.create("used")
    deleted, _ = w.images.prune({"dangling": ["false"]})
    gone = {d.get("Deleted") for d in deleted} - {None}
    assert image_id in gone and child in gone and used not in gone
    with pytest.raises(InvalidParameter, match="invalid filter 'dangling=maybe'"):
        w.images.prune({"dangling": ["maybe"]})
    with pytest.raises(InvalidParameter, match="invalid filter 'reference'"):
        w.images.prune({"reference": ["x"]})


@async_test
async def test_history_is_newest_first_with_ids_and_tags_on_the_image_itself(tmp_path):
    w, image_id = await world(tmp_path)
    entries = w.images.history("ubuntu")
    assert [e["Id"] for e in entries] == [image_id]
    assert entries[0]["Tags"] == ["ubuntu:latest"] and entries[0]["Comment"] == "Imported from -"
    assert entries[0]["Size"] == w.images.blobs.image_size(image_id)
    with pytest.raises(NotFound):
        w.images.history("nope")


async def _body(f) -> None:
    from fakes import _ROOTFS

    f.write(_ROOTFS)


@async_test
async def test_rmi_takes_untagged_parents_unless_noprune(tmp_path):
    w, _ = await world(tmp_path)
    for prune in (True, False):
        parent = await w.images.import_rootfs(_body, changes=[f"ENV P={prune}"])
        child = await w.image("child", changes=[f"ENV C={prune}"])
        w.images._images[child].parent = parent  # what a commit records
        result = w.images.delete("child", prune=prune)
        assert {"Deleted": child} in result
        assert ({"Deleted": parent} in result) is prune
        assert w.images.has_image(parent) is not prune
