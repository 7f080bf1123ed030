"""The network service: network records, container endpoints and the rules dockerd applies.

Networks and endpoints live in the store. The predefined `bridge`, `host` and `none`
exist from the first start and cannot be removed; every other network is a
user-defined bridge network (its own Linux bridge `br-<12 hex of its id>`).
Containers' endpoints on them follow the rules of network_endpoints.py; the
kernel side (bridges, interfaces, DNS listeners) is network_attach.py.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable

import msgspec

from dockyard.engine import subnets
from dockyard.engine.clock import ZERO_TIME, parse_rfc3339, rfc3339
from dockyard.engine.events import EventBus
from dockyard.engine.network_endpoints import (
    ContainerFacts,
    EndpointRules,
    NetworkPlumbing,
)
from dockyard.engine.network_models import (
    IPAM,
    Endpoint,
    Network,
    NetworkCreateRequest,
)
from dockyard.engine.resource_events import network_event, prune_event
from dockyard.engine.store import Store
from dockyard.errors import Conflict, Forbidden, InvalidParameter, NotFound

log = logging.getLogger("dockyard.networks")

PREDEFINED = {"bridge": "bridge", "host": "host", "none": "null"}  # name -> driver
NETWORK_FILTERS = {"driver", "id", "label", "name", "scope", "type", "dangling"}
PRUNE_FILTERS = {"until", "label", "label!"}
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Options of the bridge driver that Dockyard acts on.
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
SUPPORTED_OPTIONS = {BRIDGE_NAME_OPTION}


def bridge_name(n: Network) -> str:
    return n.options.get(BRIDGE_NAME_OPTION) or f"br-{n.id[:12]}"


def is_user_defined(n: Network) -> bool:
    return not n.predefined


class NetworkService(EndpointRules):
    def __init__(self, store: Store) -> None:
        self._store = store
        self._networks: dict[str, Network] = {n.id: n for n in store.networks()}
        self._endpoints: dict[tuple[str, str], Endpoint] = {
            (e.network_id, e.container_id): e for e in store.endpoints()
        }
        # Set by the container service: facts of a container by id or name, or None.
        self.container: Callable[[str], ContainerFacts | None] = lambda ref: None
        self.plumbing: NetworkPlumbing | None = None
        self.events: EventBus | None = None  # set by the container service
        # Subnet of the default bridge (set by its driver): user networks avoid it.
        self.default_bridge_subnet: Callable[[], str] = lambda: ""
        self._ensure_predefined()

    def _ensure_predefined(self) -> None:
        names = {n.name for n in self._networks.values()}
        for name, driver in PREDEFINED.items():
            if name in names:
                continue
            n = Network(
                id=secrets.token_hex(32),
                name=name,
                created=rfc3339() if name == "bridge" else ZERO_TIME,
                driver=driver,
                ipam=IPAM(driver="default", config=[]),
                predefined=True,
            )
            self._store.put_network(n)
            self._networks[n.id] = n

    def adopt_default_bridge(self, network_id: str) -> None:
        """The default bridge's id is its driver's (stable per data root), so that
        `network ls` and a container's inspect agree."""
        n = self.by_name("bridge")
        if n is None or n.id == network_id or not n.predefined:
            return
        self._store.delete_network(n.id)
        self._networks.pop(n.id, None)
        n = msgspec.structs.replace(n, id=network_id)
        self._store.put_network(n)
        self._networks[n.id] = n

    # lookups

    def get(self, ref: str) -> Network:
        """By full id, then full name, then unique id prefix (dockerd's order)."""
        if ref in self._networks:
            return self._networks[ref]
        by_name = [n for n in self._networks.values() if n.name == ref]
        if len(by_name) == 1:
            return by_name[0]
        if ref:
            by_prefix = [n for n in self._networks.values() if n.id.startswith(ref)]
            if len(by_prefix) == 1:
                return by_prefix[0]
            if len(by_prefix) > 1:
                raise NotFound(
                    f"network {ref} is ambiguous ({len(by_prefix)} matches found based on ID prefix)"
                )
        raise NotFound(f"network {ref} not found")

    def by_name(self, name: str) -> Network | None:
        for n in self._networks.values():
            if n.name == name:
                return n
        return None

    def all(self) -> list[Network]:
        return sorted(self._networks.values(), key=lambda n: (parse_rfc3339(n.created), n.name))

    def in_use(self, n: Network) -> bool:
        """Whether a running container is on it (dockerd's active endpoints: a stopped
        container holds none, and its network may go; its next start then fails)."""
        return any(nid == n.id and e.endpoint_id for (nid, _), e in self._endpoints.items())

    # list

    def list(self, filters: dict[str, list[str]] | None = None) -> list[Network]:
        filters = filters or {}
        for key in filters:
            if key not in NETWORK_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        for t in filters.get("type", []):
            if t not in ("custom", "builtin"):
                raise InvalidParameter(f"invalid filter: 'type'='{t}'")
        for d in filters.get("dangling", []):
            if d.lower() not in ("true", "1", "false", "0"):
                raise InvalidParameter(f'invalid value for "dangling": {d}')
        return [n for n in self.all() if self._matches(n, filters)]

    def _matches(self, n: Network, filters: dict[str, list[str]]) -> bool:
        if "driver" in filters and n.driver not in filters["driver"]:
            return False
        if "id" in filters and not any(v in n.id for v in filters["id"]):
            return False
        if "name" in filters and not any(v in n.name for v in filters["name"]):
            return False
        if "scope" in filters and n.scope not in filters["scope"]:
            return False
        if "type" in filters:
            kind = "builtin" if n.predefined else "custom"
            if kind not in filters["type"]:
                return False
        if "label" in filters and not _labels_match(n.labels, filters["label"]):
            return False
        if "label!" in filters and any(_labels_match(n.labels, [w]) for w in filters["label!"]):
            return False
        if "dangling" in filters:
            want = filters["dangling"][-1].lower() in ("true", "1")
            dangling = not n.predefined and not self.in_use(n)
            if want != dangling:
                return False
        return True

    # create, remove, prune

    async def create(self, req: NetworkCreateRequest) -> Network:
        n = self._create_record(req, self.default_bridge_subnet())
        if self.plumbing is not None:
            try:
                await self.plumbing.network_created(n)
            except BaseException:
                self.forget(n)
                raise
        network_event(self.events, n, "create")
        return n

    async def remove(self, ref: str) -> None:
        n = self.check_removable(ref)
        if self.plumbing is not None:
            await self.plumbing.network_removed(n)
        self.forget(n)
        network_event(self.events, n, "destroy")

    async def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]:
        deleted = []
        for n in self.prunable(filters):
            try:
                await self.remove(n.id)
            except (Forbidden, NotFound):
                continue  # in use meanwhile
            deleted.append(n.name)
        prune_event(self.events, "network", 0)  # dockerd: nothing to reclaim
        return deleted

    def _create_record(self, req: NetworkCreateRequest, default_bridge_subnet: str) -> Network:
        name = req.name or ""
        if not name:
            raise InvalidParameter("network name must be specified")
        if not _NAME.match(name):
            raise InvalidParameter(
                f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'
            )
        driver = req.driver or "bridge"
        if self.by_name(name) is not None:
            raise Conflict(f"network with name {name} already exists")
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        self._refuse_unsupported(req)
        ipam = req.ipam or IPAM()
        if ipam.driver not in ("", "default"):
            raise NotFound(f'plugin "{ipam.driver}" not found')
        if ipam.options:
            raise InvalidParameter(
                "IPAM options are not supported by dockyard's default IPAM driver: "
                + ", ".join(sorted(ipam.options))
            )
        pools = [subnets.check_pool(p) for p in ipam.config or []]
        if len(pools) > 1:
            raise InvalidParameter("dockyard supports one IPv4 subnet per network")
        taken = self._subnets_taken(default_bridge_subnet)
        if pools and pools[0].subnet:
            subnets.check_no_overlap(pools[0].subnet, taken)
            pool, user_subnet = pools[0], True
        else:
            pool, user_subnet = subnets.choose_subnet(taken, subnets.host_routes()), False
        options = dict(req.options or {})
        if BRIDGE_NAME_OPTION in options:
            self._check_bridge_name(options[BRIDGE_NAME_OPTION])
        n = Network(
            id=secrets.token_hex(32),
            name=name,
            created=rfc3339(),
            driver="bridge",
            internal=bool(req.internal),
            attachable=bool(req.attachable),
            ipam=IPAM(driver="default", options={}, config=[pool]),
            options=options,
            labels=dict(req.labels or {}),
            user_subnet=user_subnet,
        )
        self._store.put_network(n)
        self._networks[n.id] = n
        log.info("network %s created (%s, %s)", n.short_id, n.name, pool.subnet)
        return n

    @staticmethod
    def _refuse_unsupported(req: NetworkCreateRequest) -> None:
        if req.scope not in (None, "", "local"):
            raise Forbidden(
                f'scope "{req.scope}" is not supported: dockyard has local networks only'
            )
        if req.ingress:
            raise Forbidden("ingress networks need swarm mode, which dockyard does not have")
        if req.config_only or (req.config_from and req.config_from.get("Network")):
            raise InvalidParameter("config-only networks are not supported by dockyard")
        if req.enable_ipv6:
            raise InvalidParameter("IPv6 networks are not supported by dockyard's bridge driver")
        if req.enable_ipv4 is False:
            raise InvalidParameter("a network without IPv4 is not supported by dockyard")
        unknown = sorted(set(req.options or {}) - SUPPORTED_OPTIONS)
        if unknown:
            raise InvalidParameter(
                f"network option {unknown[0]} is not supported by dockyard's bridge driver"
            )

    def _check_bridge_name(self, name: str) -> None:
        if not name or len(name) > 15 or "/" in name or " " in name:
            raise InvalidParameter(f"invalid bridge name {name!r}")
        for other in self._networks.values():
            if not other.predefined and bridge_name(other) == name:
                raise Conflict(f"bridge name {name} is in use by network {other.name}")

    def _subnets_taken(self, default_bridge_subnet: str) -> list[str]:
        taken = [n.subnet for n in self._networks.values() if n.subnet]
        if default_bridge_subnet:
            taken.append(default_bridge_subnet)
        return taken

    def check_removable(self, ref: str) -> Network:
        n = self.get(ref)
        if n.predefined:
            raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
        if self.in_use(n):
            raise Forbidden(
                f"error while removing network: network {n.name} id {n.id} has active endpoints"
            )
        return n

    def forget(self, n: Network) -> None:
        """Drop the record and the endpoints of stopped containers on it (after the
        driver removed the bridge)."""
        self._store.delete_network(n.id)
        self._networks.pop(n.id, None)
        for key in [k for k in self._endpoints if k[0] == n.id]:
            del self._endpoints[key]
        log.info("network %s removed (%s)", n.short_id, n.name)

    def prunable(self, filters: dict[str, list[str]] | None = None) -> list[Network]:
        filters = filters or {}
        for key in filters:
            if key not in PRUNE_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        cutoff = None
        for value in filters.get("until", []):
            cutoff = parse_until(value)
        out = []
        for n in self.all():
            if n.predefined or self.in_use(n):
                continue
            if cutoff is not None and parse_rfc3339(n.created) >= cutoff:
                continue
            if "label" in filters and not _labels_match(n.labels, filters["label"]):
                continue
            if "label!" in filters and any(_labels_match(n.labels, [w]) for w in filters["label!"]):
                continue
            out.append(n)
        return out


def _labels_match(labels: dict[str, str] | None, wanted: list[str]) -> bool:
    labels = labels or {}
    for w in wanted:
        key, eq, value = w.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_until(value: str, now: float | None = None) -> float:
    """`until`: unix seconds, an RFC 3339 time, or a Go duration before now ("10m", "1h30m")."""
    now = time.time() if now is None else now
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if parts and "".join(a + b for a, b in parts) == text:
        return now - sum(float(a) * _UNIT[b] for a, b in parts)
    at = parse_rfc3339(text if "T" in text else text + "T00:00:00Z")
    if at:
        return at
    raise InvalidParameter(f"invalid filter 'until={value}'")
