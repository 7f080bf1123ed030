"""Containers' endpoints on user-defined networks: the rules of create-time
EndpointsConfig and of connect/disconnect, their life with the container (an
address while it runs), and the names the embedded DNS answers from them.

`EndpointRules` is the endpoint half of the network service (engine/networks.py),
which owns the records; the kernel side is `NetworkPlumbing` (network_attach.py).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dockyard.engine import subnets
from dockyard.engine.network_models import Endpoint, EndpointIPAMConfig, IPAMPool, Network
from dockyard.engine.resource_events import network_event
from dockyard.engine.store import Store
from dockyard.errors import Forbidden, InvalidParameter, NotFound

if TYPE_CHECKING:
    from dockyard.engine.events import EventBus

log = logging.getLogger("dockyard.networks")


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


class EndpointRules:
    """Mixed into NetworkService, whose records these methods read and change."""

    _store: Store
    _networks: dict[str, Network]
    _endpoints: dict[tuple[str, str], Endpoint]
    container: Callable[[str], ContainerFacts | None]
    plumbing: NetworkPlumbing | None
    events: EventBus | None
    get: Callable[[str], Network]  # NetworkService.get: by id, name or id prefix

    def endpoints_of(self, container_id: str) -> list[tuple[Network, Endpoint]]:
        """The user-defined networks a container is on, in the order it joined them."""
        out = [
            (self._networks[nid], e)
            for (nid, cid), e in self._endpoints.items()
            if cid == container_id and nid in self._networks
        ]
        return sorted(out, key=lambda pair: pair[1].seq)

    def endpoints_on(self, network_id: str) -> list[Endpoint]:
        return sorted(
            (e for (nid, _), e in self._endpoints.items() if nid == network_id),
            key=lambda e: e.seq,
        )

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
            # dockerd creates the container even when this network is unknown
            # (its create ignores FindNetwork's error): the start says "not found".
            mode_net = self._find(network_mode)
            if mode_net is not None and mode_net.predefined:
                mode_net = None
        for key, cfg in configs.items():
            if key == network_mode and mode_net is None and self._find(key) is None:
                continue  # the docker CLI names its --network here too; as above
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
            # dockerd: a stopped container is connected at its next start (and the event then)
            network_event(self.events, n, "connect", container=facts.id)
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
        network_event(self.events, n, "disconnect", container=facts.id)
        log.info("container %s disconnected from network %s", facts.id[:12], n.name)

    def check_network_mode(self, container_id: str, container_name: str, network_mode: str) -> None:
        """At start: a user-defined --network unknown at create or removed since is an
        error; one that exists by now is joined first, as dockerd does."""
        if network_mode in ("", "default", "bridge", "host", "none") or network_mode.startswith(
            "container:"
        ):
            return
        n = self.get(network_mode)  # NotFound: "network X not found", as dockerd
        if n.predefined or self.endpoint(n.id, container_id) is not None:
            return
        seq = min((e.seq for _, e in self.endpoints_of(container_id)), default=1) - 1
        self.save_endpoints([self._new_endpoint(n, container_id, container_name, None, seq)])

    def _find(self, ref: str) -> Network | None:
        try:
            return self.get(ref)
        except NotFound:
            return None

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
        for n, _ in done:
            network_event(self.events, n, "connect", container=container_id)

    async def container_stopped(self, container_id: str) -> None:
        """Release what a container's run held: interfaces, addresses, its DNS listener."""
        pairs = self.endpoints_of(container_id)
        # Those of its last start that got their interface (a start that failed
        # before attaching them connected nothing).
        joined = [n for n, e in pairs if e.endpoint_id or e.interface]
        if self.plumbing is not None:
            for n, e in pairs:
                with contextlib.suppress(Exception):
                    # "": the sandbox is deleted next, and the interfaces with it.
                    await self.plumbing.detach(n, e, "")
            await self.plumbing.container_networks_changed(container_id, "")
        for _, e in pairs:
            self._clear_address(e)
        for n in joined:
            network_event(self.events, n, "disconnect", container=container_id)

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

    def choose_address(self, n: Network, e: Endpoint) -> str:
        """The address a starting endpoint asks the driver for: its requested one, else
        the first free one of the ip-range that is not the gateway nor an
        --aux-address (which the driver's IPAM does not know of)."""
        pool = (n.ipam.config or [IPAMPool()])[0]
        wanted = e.ipam_config.ipv4_address if e.ipam_config is not None else ""
        if wanted:
            return wanted
        in_use = {
            ip
            for (nid, cid), other in self._endpoints.items()
            if nid == n.id and cid != e.container_id
            for ip in (
                other.ip_address,
                other.ipam_config.ipv4_address if other.ipam_config is not None else "",
            )
            if ip
        }
        return subnets.pick_address(pool, in_use)

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
