"""User-defined networks on the kernel: bridges, interfaces and DNS listeners.

The network service (networks.py) decides; this carries it out with the bridge
driver (network/bridge.py), the isolation chains (network/isolation.py) and the
embedded DNS server (network/dns.py):

- a network is a bridge `br-<12 hex>` with the driver's rules, plus isolation
  from every other bridge of the daemon;
- a container's endpoint is a veth in its sandbox (the network namespace file
  the container runs in), eth0 for its first network, eth1... for the next;
  the default route goes via the first network that is not --internal. The
  driver's endpoint is kept in the container record (`endpoints`, by network
  name), beside the default bridge's, so the release at exit and the restore
  after a daemon restart treat both alike;
- a container on a user-defined network gets a DNS listener on 127.0.0.11:53
  (UDP and TCP) inside its sandbox, served from the event loop.

Driver calls block on netlink and iptables: they run in a worker thread, one
at a time under the lock the default bridge's calls take too (IPAM is shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

from dockyard.engine.models import Container
from dockyard.engine.network_models import Endpoint, Network
from dockyard.engine.networking import ContainerNetworking
from dockyard.engine.networks import NetworkService, bridge_name
from dockyard.kernel.interface import Kernel
from dockyard.network import ports as ports_mod
from dockyard.network.bridge import BridgeDriver, BridgeNetwork
from dockyard.network.bridge import Endpoint as BridgeEndpoint
from dockyard.network.dns import DNS_ADDRESS, DNSAnswerer, DNSListener, host_nameservers
from dockyard.network.isolation import NetworkIsolation

log = logging.getLogger("dockyard.network")


def bridge_network(n: Network) -> BridgeNetwork:
    pool = (n.ipam.config or [None])[0]
    return BridgeNetwork(
        id=n.id,
        bridge=bridge_name(n),
        subnet=(pool.subnet or "") if pool else "",
        gateway=(pool.gateway or "") if pool else "",
        ip_range=(pool.ip_range or "") if pool else "",
        internal=n.internal,
    )


class Plumbing:
    def __init__(
        self,
        kernel: Kernel,
        driver: BridgeDriver,
        isolation: NetworkIsolation,
        networks: NetworkService,
        container: Callable[[str], Container],
        save: Callable[[Container], None],
        lock: asyncio.Lock,
    ) -> None:
        self.kernel = kernel
        self.driver = driver
        self.isolation = isolation
        self.networks = networks
        self._container = container
        self._save = save
        self._lock = lock
        self._dns: dict[str, tuple[str, DNSListener]] = {}  # container id -> (netns, listener)
        self._pending_ifnames: dict[str, set[str]] = {}  # container id -> attaching now

    async def _run(self, fn: Callable[..., object], *args: object, **kw: object) -> object:
        async with self._lock:
            return await asyncio.to_thread(fn, *args, **kw)

    async def _attach(
        self, fn: Callable[..., BridgeEndpoint], *args: object, **kw: object
    ) -> BridgeEndpoint:
        async with self._lock:
            return await asyncio.to_thread(fn, *args, **kw)

    # daemon lifetime ------------------------------------------------------------
    async def start(self, default_bridge: str) -> None:
        """After the driver's start: isolation chains, then every user-defined network's
        bridge (created, or adopted after a restart with live-restore)."""
        await self._run(self.isolation.setup)
        if default_bridge:
            await self._run(self.isolation.add, default_bridge)
        for n in self.networks.all():
            if n.predefined:
                continue
            try:
                await self.network_created(n)
            except Exception as e:  # noqa: BLE001 - one broken network must not stop the daemon
                log.error("network %s (%s) could not be set up: %s", n.name, n.short_id, e)

    async def shutdown(self, live_restore: bool) -> None:
        for cid in list(self._dns):
            self._close_dns(cid)
        if live_restore:
            return
        for n in self.networks.all():
            if not n.predefined:
                with contextlib.suppress(Exception):
                    await self._run(self.driver.delete_network, bridge_network(n))
        await self._run(self.isolation.teardown)

    # networks ------------------------------------------------------------------
    async def network_created(self, n: Network) -> None:
        net = bridge_network(n)
        await self._run(self.driver.create_network, net)
        await self._run(self.isolation.add, net.bridge)

    async def network_removed(self, n: Network) -> None:
        net = bridge_network(n)
        await self._run(self.isolation.remove, net.bridge)
        await self._run(self.driver.delete_network, net)

    # endpoints ---------------------------------------------------------------------
    async def attach(self, n: Network, e: Endpoint, netns: str) -> None:
        c = self._container(e.container_id)
        pending = self._pending_ifnames.setdefault(c.id, set())
        taken = {ep.ifname for ep in c.endpoints.values()} | pending
        ifname = next(f"eth{i}" for i in range(len(taken) + 1) if f"eth{i}" not in taken)
        routed = any(
            not self._internal(name) for name in c.endpoints
        )  # a default route exists already
        requests: list[ports_mod.PortRequest] = []
        mac = e.requested_mac
        if n.name == c.host_config.network_mode or n.id == c.host_config.network_mode:
            # Its --network: published ports, and Config.MacAddress of older clients.
            hc = c.host_config
            requests = ports_mod.requests_from(
                hc.port_bindings, (c.config.exposed_ports or {}).keys(), hc.publish_all_ports
            )
            mac = mac or (c.config.mac_address or "")
        # The address and the interface name are held from here (no await in between),
        # so that starts and connects running at once do not pick the same.
        e.ip_address = self.networks.choose_address(n, e)
        endpoint_id = e.endpoint_id or secrets.token_hex(32)  # an error message names it
        pending.add(ifname)
        try:
            ep = await self._attach(
                self.driver.attach,
                bridge_network(n),
                c.id,
                netns,
                ifname=ifname,
                ip=e.ip_address,
                mac=mac,
                ports=requests,
                default_route=not routed and not n.internal,
                endpoint_id=endpoint_id,
            )
        except ports_mod.AllocationFailed as err:
            e.ip_address = ""
            raise ports_mod.connectivity_failed(c.name[1:], endpoint_id, err) from None
        except BaseException:
            e.ip_address = ""
            raise
        finally:
            pending.discard(ifname)
            if not pending:
                self._pending_ifnames.pop(c.id, None)
        c.endpoints[n.name] = ep
        self._save(c)
        e.endpoint_id = ep.id
        e.ip_address = ep.ip
        e.ip_prefix_len = ep.prefix_len
        e.gateway = ep.gateway
        e.mac_address = ep.mac
        e.interface = ep.ifname

    def _internal(self, network_name: str) -> bool:
        n = self.networks.by_name(network_name)
        return n is not None and n.internal

    async def detach(self, n: Network, e: Endpoint, netns: str) -> None:
        try:
            c = self._container(e.container_id)
        except Exception:  # noqa: BLE001 - the container is gone: nothing left to undo
            return
        ep = c.endpoints.pop(n.name, None)
        if ep is None:
            return
        self._save(c)
        # While the container runs, its interface goes now; at exit the sandbox is
        # deleted right after, and the veth with it.
        await self._run(self.driver.detach, bridge_network(n), ep, delete_link=bool(netns))

    # DNS ---------------------------------------------------------------------------
    async def container_networks_changed(self, container_id: str, netns: str) -> None:
        pairs = self.networks.endpoints_of(container_id) if netns else []
        live = [(n, e) for n, e in pairs if e.ip_address]
        current = self._dns.get(container_id)
        if not live:
            self._close_dns(container_id)
            return
        if current is not None and current[0] == netns:
            return
        self._close_dns(container_id)
        c = self._container(container_id)
        upstreams = list(c.host_config.dns or []) or host_nameservers()
        answerer = DNSAnswerer(
            lambda name: self.networks.resolve(container_id, name),
            upstreams,
            forward=any(not n.internal for n, _ in live),
        )
        udp, tcp = await asyncio.to_thread(self.kernel.listen_in_netns, netns, DNS_ADDRESS, 53)
        listener = DNSListener(udp, tcp, answerer)
        await listener.start()
        self._dns[container_id] = (netns, listener)

    def _close_dns(self, container_id: str) -> None:
        current = self._dns.pop(container_id, None)
        if current is not None:
            current[1].close()

    def dns_listeners(self) -> int:
        return len(self._dns)


def wire(
    kernel: Kernel,
    networking: ContainerNetworking,
    networks: NetworkService,
    container: Callable[[str], Container],
    save: Callable[[Container], None],
) -> Plumbing:
    """Connect the network service to the default bridge's side (one driver, one
    IPAM, one lock) and return the plumbing; `await plumbing.start(...)` next."""
    forward = networking.firewall.forward
    isolation = NetworkIsolation(kernel, forward, forward.removeprefix("DOCKYARD-FORWARD"))
    plumbing = Plumbing(
        kernel, networking.driver, isolation, networks, container, save, networking.lock
    )

    def user_network(name: str) -> BridgeNetwork | None:
        n = networks.by_name(name)
        return bridge_network(n) if n is not None and not n.predefined else None

    networking.user_network = user_network
    networks.adopt_default_bridge(networking.default_network_id)
    networks.plumbing = plumbing
    networks.default_bridge_subnet = lambda: networking.default.subnet if networking.default else ""
    return plumbing
