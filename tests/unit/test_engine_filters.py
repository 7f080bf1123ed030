"""`docker ps` listing: all/limit and dockerd's filters."""

from __future__ import annotations

import pytest
from fakes import World, async_test, exit_with

from dockyard.engine.filters import normalize
from dockyard.errors import InvalidParameter, NotFound


async def populated(tmp_path):
    """web (running, label tier=front), job (exited 3, label tier=back), new (created)."""
    w = World(tmp_path)
    await w.image("ubuntu")
    await w.image("alpine", changes=["ENV X=1"])
    w.launcher.programs["/bin/false"] = exit_with(3)
    web = await w.run(cmd=["/bin/sleep"], name="web", labels={"tier": "front", "app": "x"})
    job = await w.run(cmd=["/bin/false"], name="job", labels={"tier": "back"})
    await w.containers.wait(job.id)
    new = await w.create("alpine", name="new-one")
    return w, web, job, new


def names(items) -> list[str]:
    return [c.name for c in items]


@async_test
async def test_list_shows_running_newest_first_and_all_shows_every_state(tmp_path):
    w, *_ = await populated(tmp_path)
    assert names(w.containers.list()) == ["/web"]
    assert names(w.containers.list(all_=True)) == ["/new-one", "/job", "/web"]
    assert names(w.containers.list(limit=2)) == ["/new-one", "/job"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": ["exited"]}, ["/job"]),
        ({"status": ["created", "running"]}, ["/new-one", "/web"]),
        ({"name": ["we"]}, ["/web"]),
        ({"name": ["^new"]}, ["/new-one"]),
        ({"name": ["?", "job"]}, ["/job"]),  # not a regexp: matches nothing, as dockerd
        ({"label": ["tier"]}, ["/job", "/web"]),
        ({"label": ["tier=front"]}, ["/web"]),
        ({"label": ["tier=front", "app=x"]}, ["/web"]),
        ({"label": ["tier=side"]}, []),
        ({"exited": ["3"]}, ["/job"]),
        ({"exited": ["0"]}, []),
        ({"ancestor": ["alpine"]}, ["/new-one"]),
        ({"ancestor": ["ubuntu:latest"]}, ["/job", "/web"]),
        ({"ancestor": ["nosuchimage"]}, []),
    ],
)
def test_filters(tmp_path, filters, expected):
    @async_test
    async def check():
        w, *_ = await populated(tmp_path)
        assert names(w.containers.list(all_=True, filters=filters)) == expected

    check()


@async_test
async def test_filter_by_id_prefix_and_before_since(tmp_path):
    w, web, job, new = await populated(tmp_path)
    assert names(w.containers.list(all_=True, filters={"id": [job.id[:6]]})) == ["/job"]
    assert names(w.containers.list(all_=True, filters={"before": ["job"]})) == ["/web"]
    assert names(w.containers.list(all_=True, filters={"since": [web.id]})) == ["/new-one", "/job"]
    with pytest.raises(NotFound, match="No such container: ghost"):
        w.containers.list(all_=True, filters={"since": ["ghost"]})


@async_test
async def test_invalid_filters_are_rejected_with_dockerds_words(tmp_path):
    w, *_ = await populated(tmp_path)
    with pytest.raises(InvalidParameter) as e:
        w.containers.list(filters={"colour": ["red"]})
    assert e.value.message == "invalid filter 'colour'"
    with pytest.raises(InvalidParameter, match="invalid filter 'status=sleeping'"):
        w.containers.list(filters={"status": ["sleeping"]})
    with pytest.raises(InvalidParameter, match="invalid filter 'exited=three'"):
        w.containers.list(filters={"exited": ["three"]})


def test_normalize_accepts_both_filter_spellings():
    assert normalize({"status": ["running"]}) == {"status": ["running"]}
    assert normalize({"status": {"running": True, "exited": False}}) == {"status": ["running"]}
    assert normalize("") == {}
    with pytest.raises(InvalidParameter):
        normalize(["status"])
