"""Volume and network events on the bus, with dockerd's actions and attributes."""

from __future__ import annotations

import pytest
from fakes import async_test

from dockyard.engine.events import EventBus
from dockyard.engine.network_models import NetworkCreateRequest
from dockyard.engine.networks import NetworkService
from dockyard.engine.store import Store
from dockyard.engine.volumes import VolumeService
from dockyard.errors import Conflict


def seen(bus: EventBus) -> list[tuple[str, str, str, dict[str, str]]]:
    return [(e.type, e.action, e.actor_id, e.attributes) for e in bus.recent()]


def test_volume_create_destroy_prune_events(tmp_path):
    bus = EventBus()
    volumes = VolumeService(Store(str(tmp_path / "db")), str(tmp_path))
    volumes.events = bus
    volumes.create("data")
    volumes.create("data")  # exists: answered, not created again, no second event
    anon = volumes.create()
    volumes.users_of = lambda name: ["c1"] if name == "data" else []
    with pytest.raises(Conflict):
        volumes.remove("data")  # refused: nothing destroyed, no event
    volumes.users_of = lambda name: []
    volumes.remove("data")
    volumes.prune()
    assert seen(bus) == [
        ("volume", "create", "data", {"driver": "local"}),
        ("volume", "create", anon.name, {"driver": "local"}),
        ("volume", "destroy", "data", {"driver": "local"}),
        ("volume", "destroy", anon.name, {"driver": "local"}),
        ("volume", "prune", "", {"reclaimed": "0"}),
    ]


@async_test
async def test_network_create_destroy_prune_events(tmp_path):
    bus = EventBus()
    networks = NetworkService(Store(str(tmp_path / "db")))
    networks.events = bus
    n = await networks.create(NetworkCreateRequest(name="front"))
    await networks.remove("front")
    await networks.prune()
    assert seen(bus) == [
        ("network", "create", n.id, {"name": "front", "type": "bridge"}),
        ("network", "destroy", n.id, {"name": "front", "type": "bridge"}),
        ("network", "prune", "", {"reclaimed": "0"}),
    ]
