"""dockerd's volume and network events, with the Actor attributes dockerd gives them.

Volumes (volume/service/store.go, daemon/volumes_unix.go, container.UnmountVolumes):
  create, destroy           {"driver"}
  mount                     {"driver", "container", "destination", "read/write", "propagation"}
  unmount                   {"driver", "container"}
  prune (no actor id)       {"reclaimed"}
Networks (daemon/events.go LogNetworkEventWithAttributes): actor id = network id,
  create, destroy           {"name", "type"}
  connect, disconnect       {"container", "name", "type"}
  prune (no actor id)       {"reclaimed"}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.engine.events import EventBus
    from dockyard.engine.models import Container
    from dockyard.engine.network_models import Network


def volume_event(
    bus: EventBus | None, name: str, action: str, driver: str = "local", **extra: str
) -> None:
    if bus is not None:
        bus.emit("volume", action, name, {"driver": driver or "local", **extra})


def volume_mounts(bus: EventBus | None, c: Container, action: str) -> None:
    """mount (at start) or unmount (once the container stopped) of each volume it uses."""
    if bus is None:
        return
    for mp in c.mount_points or []:
        if mp.type != "volume" or not mp.name:
            continue
        if action == "mount":
            extra = {
                "container": c.id,
                "destination": mp.destination,
                "read/write": "true" if mp.rw else "false",
                "propagation": mp.propagation,
            }
        else:
            extra = {"container": c.id}
        volume_event(bus, mp.name, action, mp.driver, **extra)


def network_event(bus: EventBus | None, n: Network, action: str, **extra: str) -> None:
    if bus is not None:
        bus.emit("network", action, n.id, {**extra, "name": n.name, "type": n.driver})


def prune_event(bus: EventBus | None, kind: str, reclaimed: int) -> None:
    if bus is not None:
        bus.emit(kind, "prune", "", {"reclaimed": str(reclaimed)})
