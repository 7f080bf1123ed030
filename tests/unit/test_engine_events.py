"""The event bus: dockerd's message shape and filters, since/until."""

from __future__ import annotations

import asyncio
import time

import pytest

from dockyard.engine.events import Event, EventBus, EventFilter
from dockyard.errors import InvalidParameter


def ev(type_="container", action="start", actor="abc", **attrs: str) -> Event:
    return Event(type_, action, actor, attrs, 1_700_000_000_123_456_789)


def test_message_shape_with_legacy_fields():
    m = ev(image="busybox", name="web").message()
    assert m == {
        "status": "start", "id": "abc", "from": "busybox",
        "Type": "container", "Action": "start",
        "Actor": {"ID": "abc", "Attributes": {"image": "busybox", "name": "web"}},
        "scope": "local", "time": 1_700_000_000, "timeNano": 1_700_000_000_123_456_789,
    }  # fmt: skip
    net = Event("network", "create", "n1", {"name": "x"}).message()
    assert "status" not in net and "id" not in net


@pytest.mark.parametrize(
    ("filters", "event", "matches"),
    [
        ({"type": ["image"]}, ev(), False),
        ({"type": ["container"]}, ev(), True),
        ({"event": ["start"]}, ev(action="start"), True),
        ({"event": ["star"]}, ev(action="start"), False),  # exact, not a prefix
        # exec_create and health_status match their "action: detail" forms (#25798)
        ({"event": ["exec_create"]}, ev(action="exec_create: sh -c true"), True),
        ({"event": ["health_status"]}, ev(action="health_status: healthy"), True),
        ({"container": ["web"]}, ev(name="web"), True),
        ({"container": ["we"]}, ev(name="web"), True),  # dockerd: a name prefix
        ({"container": ["ab"]}, ev(name="web"), False),  # an id must be whole
        ({"container": ["abc"]}, ev(name="web"), True),
        ({"container": ["web"]}, ev(type_="image", name="web"), False),
        ({"image": ["busybox"]}, ev(image="busybox:latest"), True),
        (
            {"image": ["busybox:latest"]},
            ev(type_="image", actor="sha256:1", name="busybox:latest"),
            True,
        ),
        ({"image": ["alpine"]}, ev(image="busybox"), False),
        ({"label": ["k"]}, ev(k="v"), True),
        ({"label": ["k=v"]}, ev(k="v"), True),
        ({"label": ["k=w"]}, ev(k="v"), False),
        ({"label": ["k=v", "other"]}, ev(k="v"), False),  # every label must match
        ({"type": ["container"], "event": ["die"]}, ev(action="start"), False),
    ],
)
def test_filters(filters, event, matches):
    assert EventFilter(filters).matches(event) is matches


def test_unknown_filter_is_refused():
    with pytest.raises(InvalidParameter, match="invalid filter 'bogus'"):
        EventFilter({"bogus": ["1"]})


def test_since_replays_and_until_ends():
    async def go() -> None:
        bus = EventBus(keep=3)
        t0 = time.time()
        for i in range(5):
            bus.emit("container", f"a{i}", "x")
        got = [e.action async for e in bus.stream(since=t0, until=time.time())]
        assert got == ["a2", "a3", "a4"]  # only what is kept
        with pytest.raises(InvalidParameter):
            bus.stream(since=2.0, until=1.0)

        async def later() -> None:
            await asyncio.sleep(0.05)
            bus.emit("container", "live", "x")
            bus.emit("image", "pull", "busybox")

        task = asyncio.create_task(later())
        stream = bus.stream(until=time.time() + 0.5, filters={"type": ["image"]})
        got = [e.action async for e in stream]
        await task
        assert got == ["pull"]

    asyncio.run(go())
