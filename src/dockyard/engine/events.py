"""The engine's event bus: what `docker events` and GET /events show.

Services call `events.emit(type, action, actor_id, attributes)` when they do
something dockerd reports (container create/start/die..., image pull/tag...,
network and volume actions). The bus keeps the last events in memory (dockerd
keeps 256) for `since`, and fans new ones out to subscribers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from dockyard.errors import InvalidParameter

KEEP = 256
EVENT_FILTERS = {"type", "container", "image", "event", "label", "network", "volume", "scope"}
TYPES = {"container", "image", "network", "volume", "daemon", "plugin", "service", "node",
         "secret", "config", "builder"}  # fmt: skip
# dockerd: a filter on these actions matches "exec_create: sh -c ..." by prefix (#25798).
_PREFIX_ACTIONS = {"health_status", "exec_create", "exec_start"}


@dataclass(frozen=True)
class Event:
    type: str
    action: str
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = 0
    scope: str = "local"

    def message(self) -> dict:
        """dockerd's events.Message, with the pre-1.22 status/id/from for containers and
        images (which clients still read)."""
        out: dict = {}
        if self.type in ("container", "image"):
            out["status"] = self.action
            out["id"] = self.actor_id
            if self.type == "container" and "image" in self.attributes:
                out["from"] = self.attributes["image"]
        out.update(
            {
                "Type": self.type,
                "Action": self.action,
                "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
                "scope": self.scope,
                "time": self.time_nano // 1_000_000_000,
                "timeNano": self.time_nano,
            }
        )
        return out


def _strip_tag(ref: str) -> str:
    head, sep, tail = ref.rpartition(":")
    return head if sep and "/" not in tail else ref


class EventFilter:
    """dockerd's events/filter.go over normalized filters ({key: [values]})."""

    def __init__(self, filters: dict[str, list[str]]) -> None:
        for key in filters:
            if key not in EVENT_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        self.f = {k: v for k, v in filters.items() if v}

    def _exact(self, key: str, *values: str) -> bool:
        return key not in self.f or any(v in self.f[key] for v in values if v)

    def _fuzzy(self, key: str, value: str) -> bool:
        return any(value.startswith(w) for w in self.f.get(key, ()))

    def _name(self, ev: Event, kind: str) -> bool:
        if kind not in self.f:
            return True
        return ev.type == kind and (
            ev.actor_id in self.f[kind] or self._fuzzy(kind, ev.attributes.get("name", ""))
        )

    def matches(self, ev: Event) -> bool:
        if not self._exact("type", ev.type) or not self._exact("scope", ev.scope):
            return False
        if "event" in self.f:
            if any(w in _PREFIX_ACTIONS for w in self.f["event"]):
                if not self._fuzzy("event", ev.action):
                    return False
            elif ev.action not in self.f["event"]:
                return False
        if "label" in self.f:
            for want in self.f["label"]:
                key, eq, value = want.partition("=")
                if key not in ev.attributes or (eq and ev.attributes[key] != value):
                    return False
        if "image" in self.f:
            name = ev.attributes.get("name" if ev.type == "image" else "image", "")
            candidates = (ev.actor_id, name, _strip_tag(ev.actor_id), _strip_tag(name))
            if not any(c and c in self.f["image"] for c in candidates):
                return False
        return (
            self._name(ev, "container") and self._name(ev, "network") and self._name(ev, "volume")
        )


class EventBus:
    def __init__(self, keep: int = KEEP) -> None:
        self._recent: deque[Event] = deque(maxlen=keep)
        self._subscribers: set[asyncio.Queue[Event]] = set()

    def emit(
        self,
        type_: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str] | None = None,
        scope: str = "local",
    ) -> Event:
        ev = Event(type_, action, actor_id, dict(attributes or {}), time.time_ns(), scope)
        self._recent.append(ev)
        for q in self._subscribers:
            q.put_nowait(ev)
        return ev

    def recent(self) -> list[Event]:
        return list(self._recent)

    def stream(
        self, *, since: float = 0.0, until: float = 0.0, filters: dict[str, list[str]] | None = None
    ) -> AsyncIterator[Event]:
        """Past events from `since` (if given), then live ones until `until` (if given).

        dockerd streams forever without `until`; with an `until` in the past it
        answers the stored events and ends. Bad filters raise here, at once."""
        match = EventFilter(filters or {})
        if since and until and since > until:
            raise InvalidParameter("`since` time is after `until` time")
        return self._stream(since, until, match)

    async def _stream(self, since: float, until: float, match: EventFilter) -> AsyncIterator[Event]:
        now = time.time()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            if since:
                for ev in list(self._recent):
                    t = ev.time_nano / 1e9
                    if t >= since and (not until or t <= until) and match.matches(ev):
                        yield ev
            if until and until <= now:
                return
            while True:
                timeout = (until - time.time()) if until else None
                if timeout is not None and timeout <= 0:
                    return
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    return
                if match.matches(ev):
                    yield ev
        finally:
            self._subscribers.discard(queue)
