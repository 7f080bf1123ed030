"""The network service: network records, container endpoints and the rules dockerd applies.

Networks and endpoints live in the store. The predefined `bridge`, `host` and `none`
exist from the first start and cannot be removed; every other network is a
user-defined bridge network (its own Linux bridge `br-<12 hex of its id>`). An
endpoint is a container's membership of a user-defined network: made at create
or connect, given an address while the container runs (see network_attach.py),
removed at disconnect or when the container goes.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import msgspec

from dockyard.engine import subnets
from dockyard.engine.clock import ZERO_TIME, parse_rfc3339, rfc3339
from dockyard.engine.network_models import (
    IPAM,
    Endpoint,
    EndpointIPAMConfig,
    IPAMPool,
    Network,
    NetworkCreateRequest,
)
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


@dataclass
class ContainerFacts:
    """What the network service needs to know of a container (from the container service)."""

    id: str
    name: str  # without the leading "/"
    network_mode: str
    running: bool
    netns: str = ""  # the path of its network namespace file while it runs


class NetworkPlumbing(Protocol):
    """What the network service asks of the kernel side (network_attach.Plumbing):
    bridges for networks, interfaces for endpoints, DNS listeners for containers."""

    async def network_created(self, n: Network) -> None: ...

    async def network_removed(self, n: Network) -> None: ...

    async def attach(self, n: Network, e: Endpoint, netns: str) -> None:
        """Give the endpoint its interface in `netns` (fills ip/mac/gateway/interface)."""

    async def detach(self, n: Network, e: Endpoint, netns: str) -> None: ...

    async def shutdown(self, live_restore: bool) -> None: ...

    async def container_networks_changed(self, container_id: str, netns: str) -> None:
        """Open or close the container's DNS listener to match its networks ("" netns:
        the container stopped)."""


def bridge_name(n: Network) -> str:
    return n.options.get(BRIDGE_NAME_OPTION) or f"br-{n.id[:12]}"


def is_user_defined(n: Network) -> bool:
    return not n.predefined


class NetworkService:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._networks: dict[str, Network] = {n.id: n for n in store.networks()}
        self._endpoints: dict[tuple[str, str], Endpoint] = {
            (e.network_id, e.container_id): e for e in store.endpoints()
        }
        # Set by the container service: facts of a container by id or name, or None.
        self.container: Callable[[str], ContainerFacts | None] = lambda ref: None
        self.plumbing: NetworkPlumbing | None = None
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

    def endpoints_on(self, network_id: str) -> list[Endpoint]:
        return sorted(
            (e for (nid, _), e in self._endpoints.items() if nid == network_id),
            key=lambda e: e.seq,
        )

    def endpoints_of(self, container_id: str) -> list[tuple[Network, Endpoint]]:
        """The user-defined networks a container is on, in the order it joined them."""
        out = [
            (self._networks[nid], e)
            for (nid, cid), e in self._endpoints.items()
            if cid == container_id and nid in self._networks
        ]
        return sorted(out, key=lambda pair: pair[1].seq)

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
        return n

    async def remove(self, ref: str) -> None:
        n = self.check_removable(ref)
        if self.plumbing is not None:
            await self.plumbing.network_removed(n)
        self.forget(n)

    async def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]:
        deleted = []
        for n in self.prunable(filters):
            try:
                await self.remove(n.id)
            except (Forbidden, NotFound):
                continue  # in use meanwhile
            deleted.append(n.name)
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

    # endpoints

    def plan_endpoints(
        self,
        container_id: str,
        container_name: str,
        network_mode: str,
        endpoints_config: dict[str, EndpointSettingsLike | None] | None,
    ) -> list[Endpoint]:
        """At container create: the endpoints its NetworkMode and EndpointsConfig ask
        for, validated but not yet saved (see `save_endpoints`)."""
        configs = dict(endpoints_config or {})
        wanted: list[tuple[Network, EndpointSettingsLike | None]] = []
        mode_net = None
        if network_mode not in ("", "default", "bridge", "host", "none") and not (
            network_mode.startswith("container:")
        ):
            mode_net = self.get(network_mode)
            if mode_net.predefined:
                mode_net = None
        for key, cfg in configs.items():
            # The docker CLI names the default network "default" (NetworkMode's value).
            n = self.get("bridge" if key == "default" else key)
            if n.predefined:
                if n.name != (network_mode if network_mode not in ("", "default") else "bridge"):
                    raise InvalidParameter(
                        f"Container cannot be connected to network endpoints: {network_mode}, {key}"
                    )
                if cfg is not None and (cfg.aliases or _ipv4(cfg)):
                    raise InvalidParameter(
                        "network-scoped aliases and user specified IP addresses are supported "
                        "on user defined networks only"
                    )
                continue
            if network_mode in ("host", "none") or network_mode.startswith("container:"):
                raise InvalidParameter(
                    "container sharing network namespace with another container or host "
                    "cannot be connected to any other network"
                )
            wanted.append((n, cfg))
        if mode_net is not None and all(n.id != mode_net.id for n, _ in wanted):
            wanted.insert(0, (mode_net, None))
        elif mode_net is not None:
            wanted.sort(key=lambda pair: pair[0].id != mode_net.id)
        out = []
        for seq, (n, cfg) in enumerate(wanted):
            out.append(self._new_endpoint(n, container_id, container_name, cfg, seq))
        return out

    def _new_endpoint(
        self,
        n: Network,
        container_id: str,
        container_name: str,
        cfg: EndpointSettingsLike | None,
        seq: int,
    ) -> Endpoint:
        ipv4 = _ipv4(cfg)
        if ipv4:
            if not n.user_subnet:
                raise Forbidden(
                    "user specified IP address is supported only when connecting to networks "
                    "with user configured subnets"
                )
            pool = (n.ipam.config or [IPAMPool()])[0]
            subnets.pick_address(pool, self._addresses_in_use(n.id), ipv4)
        mac = ""
        if cfg is not None:
            if cfg.links:
                raise InvalidParameter("links are not supported by dockyard; use network aliases")
            if cfg.driver_opts:
                raise InvalidParameter(
                    "endpoint driver options are not supported by dockyard's bridge driver"
                )
            if cfg.gw_priority:
                raise InvalidParameter(
                    "gateway priorities are not supported by dockyard: the first network "
                    "joined gives the default route"
                )
            if cfg.ipam_config is not None and (
                cfg.ipam_config.ipv6_address or cfg.ipam_config.link_local_ips
            ):
                raise InvalidParameter(
                    "IPv6 and link-local addresses are not supported by dockyard's bridge driver"
                )
            mac = cfg.mac_address or ""
            if mac and not re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", mac):
                raise InvalidParameter(f"invalid MAC address: {mac}")
        aliases = [a for a in (cfg.aliases if cfg is not None else None) or [] if a]
        for a in aliases:
            if len(a) > 255 or any(c.isspace() for c in a):
                raise InvalidParameter(f"invalid network alias {a!r}")
        return Endpoint(
            network_id=n.id,
            container_id=container_id,
            aliases=aliases,
            ipam_config=EndpointIPAMConfig(ipv4_address=ipv4) if ipv4 else None,
            requested_mac=mac.lower(),
            seq=seq,
        )

    def save_endpoints(self, endpoints: Iterable[Endpoint]) -> None:
        for e in endpoints:
            self._store.put_endpoint(e)
            self._endpoints[(e.network_id, e.container_id)] = e

    def update_endpoint(self, e: Endpoint) -> None:
        self._store.put_endpoint(e)
        self._endpoints[(e.network_id, e.container_id)] = e

    def endpoint(self, network_id: str, container_id: str) -> Endpoint | None:
        return self._endpoints.get((network_id, container_id))

    def new_connection(
        self, n: Network, facts: ContainerFacts, cfg: EndpointSettingsLike | None
    ) -> Endpoint:
        """`network connect`: validate and make (not save) the endpoint."""
        mode = facts.network_mode
        if mode == "host" or n.name == "host":
            raise Forbidden(
                "container cannot be disconnected from host network or connected to host network"
            )
        if mode == "none" or mode.startswith("container:") or n.name == "none":
            raise Forbidden(
                "container sharing network namespace with another container or host cannot "
                "be connected to any other network"
            )
        if n.predefined:
            raise Forbidden(
                f"dockyard connects containers to user-defined networks only; {n.name} is "
                "chosen with --network at create"
            )
        if (n.id, facts.id) in self._endpoints:
            raise Forbidden(f"endpoint with name {facts.name} already exists in network {n.name}")
        seq = 1 + max((e.seq for _, e in self.endpoints_of(facts.id)), default=-1)
        if mode not in ("", "default", "bridge"):
            seq = max(seq, 1)
        return self._new_endpoint(n, facts.id, facts.name, cfg, seq)

    def _facts(self, ref: str) -> ContainerFacts:
        facts = self.container(ref)
        if facts is None:
            raise NotFound(f"No such container: {ref}")
        return facts

    async def connect(self, ref: str, container_ref: str, cfg: EndpointSettingsLike | None) -> None:
        """`network connect`: on a running container the interface appears at once."""
        n = self.get(ref)
        facts = self._facts(container_ref)
        e = self.new_connection(n, facts, cfg)
        self.save_endpoints([e])
        if facts.running and facts.netns and self.plumbing is not None:
            try:
                await self.plumbing.attach(n, e, facts.netns)
                self.update_endpoint(e)
                await self.plumbing.container_networks_changed(facts.id, facts.netns)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.plumbing.detach(n, e, facts.netns)
                self.drop_endpoint(n.id, facts.id)
                raise
        log.info("container %s connected to network %s", facts.id[:12], n.name)

    async def disconnect(self, ref: str, container_ref: str, force: bool = False) -> None:
        n = self.get(ref)
        facts = self.container(container_ref)
        if facts is None:
            if force:
                # dockerd: --force also cleans up after a container that is gone.
                for e in self.endpoints_on(n.id):
                    if e.container_id.startswith(container_ref):
                        self.drop_endpoint(n.id, e.container_id)
                        return
            raise NotFound(f"No such container: {container_ref}")
        if n.predefined:
            if n.name == "host":
                raise Forbidden(
                    "container cannot be disconnected from host network or connected to host network"
                )
            raise Forbidden(
                f"dockyard disconnects containers from user-defined networks only; {n.name} is "
                "the container's --network"
            )
        e = self.endpoint(n.id, facts.id)
        if e is None:
            raise Forbidden(f"container {facts.id} is not connected to network {n.name}")
        if facts.running and facts.netns and self.plumbing is not None:
            await self.plumbing.detach(n, e, facts.netns)
        self.drop_endpoint(n.id, facts.id)
        if facts.running and facts.netns and self.plumbing is not None:
            await self.plumbing.container_networks_changed(facts.id, facts.netns)
        log.info("container %s disconnected from network %s", facts.id[:12], n.name)

    def check_network_mode(self, network_mode: str) -> None:
        """At start: a user-defined --network removed since create is an error."""
        if network_mode in ("", "default", "bridge", "host", "none") or network_mode.startswith(
            "container:"
        ):
            return
        self.get(network_mode)  # NotFound: "network X not found", as dockerd

    async def container_started(self, container_id: str, netns: str) -> None:
        """Attach every endpoint of a starting container (eth0 first for its --network)."""
        if self.plumbing is None:
            return
        done: list[tuple[Network, Endpoint]] = []
        try:
            for n, e in self.endpoints_of(container_id):
                await self.plumbing.attach(n, e, netns)
                self.update_endpoint(e)
                done.append((n, e))
            if done:
                await self.plumbing.container_networks_changed(container_id, netns)
        except BaseException:
            for n, e in reversed(done):
                with contextlib.suppress(Exception):
                    await self.plumbing.detach(n, e, netns)
                self._clear_address(e)
            raise

    async def container_stopped(self, container_id: str) -> None:
        """Release what a container's run held: interfaces, addresses, its DNS listener."""
        pairs = self.endpoints_of(container_id)
        if self.plumbing is not None:
            for n, e in pairs:
                with contextlib.suppress(Exception):
                    # "": the sandbox is deleted next, and the interfaces with it.
                    await self.plumbing.detach(n, e, "")
            await self.plumbing.container_networks_changed(container_id, "")
        for _, e in pairs:
            self._clear_address(e)

    async def restore(self, running: list[tuple[str, str]]) -> None:
        """After a daemon start: DNS listeners again for the running containers
        (id, sandbox) on user-defined networks."""
        if self.plumbing is None:
            return
        for container_id, netns in running:
            if netns and self.endpoints_of(container_id):
                try:
                    await self.plumbing.container_networks_changed(container_id, netns)
                except Exception as e:  # noqa: BLE001 - its DNS is lost, not the daemon
                    log.warning("container %s: DNS listener not restored: %s", container_id[:12], e)

    async def shutdown(self, live_restore: bool) -> None:
        if self.plumbing is not None:
            await self.plumbing.shutdown(live_restore)

    def _clear_address(self, e: Endpoint) -> None:
        if not (e.ip_address or e.endpoint_id or e.interface):
            return
        e.ip_address = e.gateway = e.mac_address = e.endpoint_id = e.interface = ""
        e.ip_prefix_len = 0
        if (e.network_id, e.container_id) in self._endpoints:
            self.update_endpoint(e)

    def drop_endpoint(self, network_id: str, container_id: str) -> None:
        self._store.delete_endpoint(network_id, container_id)
        self._endpoints.pop((network_id, container_id), None)

    def container_removed(self, container_id: str) -> None:
        for n, _ in self.endpoints_of(container_id):
            self.drop_endpoint(n.id, container_id)

    def _addresses_in_use(self, network_id: str) -> set[str]:
        used = set()
        for (nid, _), e in self._endpoints.items():
            if nid != network_id:
                continue
            if e.ip_address:
                used.add(e.ip_address)
            if e.ipam_config is not None and e.ipam_config.ipv4_address:
                used.add(e.ipam_config.ipv4_address)
        return used

    def allocate(self, n: Network, e: Endpoint) -> str:
        """An address for a starting endpoint (its requested one when it asked)."""
        pool = (n.ipam.config or [IPAMPool()])[0]
        wanted = e.ipam_config.ipv4_address if e.ipam_config is not None else ""
        in_use = {
            ip
            for (nid, cid), other in self._endpoints.items()
            if nid == n.id and cid != e.container_id
            for ip in (
                other.ip_address,
                other.ipam_config.ipv4_address if other.ipam_config else "",
            )
            if ip
        }
        return subnets.pick_address(pool, in_use, wanted)

    # DNS

    def resolve(self, container_id: str, name: str) -> list[str] | None:
        """Addresses for `name` as seen from `container_id`: containers on the same
        user-defined networks, by name, network alias or short id; None if none."""
        found: list[str] = []
        for n, _ in self.endpoints_of(container_id):
            suffix = "." + n.name.lower()
            bare = name[: -len(suffix)] if name.endswith(suffix) else name
            for e in self.endpoints_on(n.id):
                if not e.ip_address:
                    continue
                facts = self.container(e.container_id)
                if facts is None:
                    continue
                names = {facts.name.lower(), e.container_id[:12]}
                names.update(a.lower() for a in e.aliases)
                if (name in names or bare in names) and e.ip_address not in found:
                    found.append(e.ip_address)
        return found or None

    def dns_names(self, e: Endpoint, container_name: str) -> list[str]:
        """What inspect shows as DNSNames: the name, aliases and short id."""
        names = [container_name, *e.aliases, e.container_id[:12]]
        return list(dict.fromkeys(names))


class EndpointSettingsLike:
    """The parts of a create/connect EndpointConfig this service reads (duck-typed:
    engine.models.EndpointSettings)."""

    aliases: list[str] | None
    ipam_config: EndpointIPAMConfig | None
    mac_address: str
    links: list[str] | None
    driver_opts: dict[str, str] | None
    gw_priority: int


def _ipv4(cfg: EndpointSettingsLike | None) -> str:
    if cfg is None or cfg.ipam_config is None:
        return ""
    return cfg.ipam_config.ipv4_address or ""


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
